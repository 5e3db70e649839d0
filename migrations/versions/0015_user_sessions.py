"""server-side sign-in sessions (sign-out and deactivation end them)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 17:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ops_user_session',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['ops_user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('ops_user_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ops_user_session_user_id'), ['user_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_ops_user_session_last_seen_at'),
                              ['last_seen_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ops_user_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ops_user_session_last_seen_at'))
        batch_op.drop_index(batch_op.f('ix_ops_user_session_user_id'))
    op.drop_table('ops_user_session')
