"""request totals for GET /metrics (Prometheus counters and histograms)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26 23:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

BUCKETS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


def upgrade() -> None:
    op.create_table(
        'ops_request_total',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('endpoint', sa.String(length=255), nullable=False),
        sa.Column('method', sa.String(length=10), nullable=False),
        sa.Column('status_class', sa.String(length=3), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.Column('sum_ms', sa.Float(), nullable=False),
        *[sa.Column(f'le_{b}', sa.BigInteger(), nullable=False, server_default='0')
          for b in BUCKETS],
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('endpoint', 'method', 'status_class', name='uq_request_total'),
    )


def downgrade() -> None:
    op.drop_table('ops_request_total')
