"""profiler sessions

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 19:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'ops_profile_session',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('requested_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('stop_requested_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('duration_s', sa.Float(), nullable=True),
        sa.Column('interval_s', sa.Float(), nullable=False),
        sa.Column('endpoint', sa.String(length=255), nullable=True),
        sa.Column('memory', sa.Boolean(), nullable=False),
        sa.Column('stopped_by', sa.String(length=64), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_profile_session_status', 'ops_profile_session', ['status', 'id'])
    op.create_table(
        'ops_profile_part',
        sa.Column('id', BigId, nullable=False),
        sa.Column('session_id', sa.Integer(), nullable=False),
        sa.Column('process', sa.String(length=96), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('requests', sa.Integer(), nullable=False),
        sa.Column('samples', sa.Integer(), nullable=False),
        sa.Column('profiled_seconds', sa.Float(), nullable=False),
        sa.Column('overhead_seconds', sa.Float(), nullable=False),
        sa.Column('tree', sa.JSON(), nullable=True),
        sa.Column('memory', sa.JSON(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['session_id'], ['ops_profile_session.id'],
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('session_id', 'process', name='uq_profile_part_session_process'),
    )


def downgrade() -> None:
    op.drop_table('ops_profile_part')
    op.drop_index('ix_profile_session_status', table_name='ops_profile_session')
    op.drop_table('ops_profile_session')
