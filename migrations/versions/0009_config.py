"""configuration file versions

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 18:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ops_config_change',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('file', sa.String(length=512), nullable=False),
        sa.Column('time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('version_before', sa.String(length=64), nullable=True),
        sa.Column('version_after', sa.String(length=64), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('content', sa.LargeBinary(), nullable=False),
        sa.Column('diff', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_config_change_file_id', 'ops_config_change', ['file', 'id'])
    op.create_index('ix_config_change_file_version', 'ops_config_change',
                    ['file', 'version_after'])


def downgrade() -> None:
    op.drop_index('ix_config_change_file_version', table_name='ops_config_change')
    op.drop_index('ix_config_change_file_id', table_name='ops_config_change')
    op.drop_table('ops_config_change')
