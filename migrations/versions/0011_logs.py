"""captured log records

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 19:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ops_log_record',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('levelno', sa.SmallInteger(), nullable=False),
    sa.Column('logger', sa.String(length=255), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('process', sa.String(length=96), nullable=False),
    sa.Column('extras', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ops_log_record', schema=None) as batch_op:
        batch_op.create_index('ix_log_record_level_time', ['levelno', 'time'], unique=False)
        batch_op.create_index('ix_log_record_request_id', ['request_id'], unique=False)
        batch_op.create_index('ix_log_record_time', ['time'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ops_log_record', schema=None) as batch_op:
        batch_op.drop_index('ix_log_record_time')
        batch_op.drop_index('ix_log_record_request_id')
        batch_op.drop_index('ix_log_record_level_time')
    op.drop_table('ops_log_record')
