"""Redis samples for the Cache and Redis pages' history charts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 15:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'ops_redis_sample',
        sa.Column('id', BigId, nullable=False),
        sa.Column('instance', sa.String(length=32), nullable=False),
        sa.Column('time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('uptime_s', sa.BigInteger(), nullable=False),
        sa.Column('used_memory', sa.BigInteger(), nullable=False),
        sa.Column('used_memory_peak', sa.BigInteger(), nullable=False),
        sa.Column('used_memory_rss', sa.BigInteger(), nullable=False),
        sa.Column('used_memory_dataset', sa.BigInteger(), nullable=True),
        sa.Column('fragmentation', sa.Float(), nullable=True),
        sa.Column('maxmemory', sa.BigInteger(), nullable=False),
        sa.Column('keys', sa.BigInteger(), nullable=False),
        sa.Column('clients', sa.Integer(), nullable=False),
        sa.Column('blocked_clients', sa.Integer(), nullable=False),
        sa.Column('ops_per_sec', sa.Integer(), nullable=False),
        sa.Column('commands', sa.BigInteger(), nullable=False),
        sa.Column('hits', sa.BigInteger(), nullable=False),
        sa.Column('misses', sa.BigInteger(), nullable=False),
        sa.Column('evicted', sa.BigInteger(), nullable=False),
        sa.Column('expired', sa.BigInteger(), nullable=False),
        sa.Column('cache_hits', sa.BigInteger(), nullable=True),
        sa.Column('cache_misses', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('instance', 'time', name='uq_redis_sample'),
    )


def downgrade() -> None:
    op.drop_table('ops_redis_sample')
