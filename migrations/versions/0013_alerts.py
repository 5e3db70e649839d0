"""alert rules, alert events and webhook deliveries

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26 22:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'ops_alert_rule',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('target', sa.String(length=255), nullable=False),
        sa.Column('comparison', sa.String(length=2), nullable=False),
        sa.Column('threshold', sa.Float(), nullable=False),
        sa.Column('for_minutes', sa.Integer(), nullable=False),
        sa.Column('window_minutes', sa.Integer(), nullable=False),
        sa.Column('severity', sa.String(length=16), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('webhook_url', sa.Text(), nullable=True),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_by', sa.String(length=64), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('pending_since', sa.DateTime(timezone=True), nullable=True),
        sa.Column('current_event_id', sa.Integer(), nullable=True),
        sa.Column('last_value', sa.Float(), nullable=True),
        sa.Column('last_evaluated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_message', sa.String(length=500), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name', name='uq_alert_rule_name'),
    )
    op.create_table(
        'ops_alert_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('rule_id', sa.Integer(), nullable=True),
        sa.Column('rule_name', sa.String(length=100), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('target', sa.String(length=255), nullable=False),
        sa.Column('severity', sa.String(length=16), nullable=False),
        sa.Column('comparison', sa.String(length=2), nullable=False),
        sa.Column('threshold', sa.Float(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('value', sa.Float(), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('resolved_value', sa.Float(), nullable=True),
        sa.Column('message', sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(['rule_id'], ['ops_alert_rule.id'],
                                name='fk_alert_event_rule', ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_alert_event_state_started', 'ops_alert_event',
                    ['state', 'started_at'])
    op.create_index('ix_alert_event_rule_started', 'ops_alert_event',
                    ['rule_id', 'started_at'])
    op.create_table(
        'ops_alert_delivery',
        sa.Column('id', BigId, nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=True),
        sa.Column('rule_id', sa.Integer(), nullable=True),
        sa.Column('rule_name', sa.String(length=100), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('url', sa.String(length=500), nullable=False),
        sa.Column('attempt', sa.SmallInteger(), nullable=False),
        sa.Column('time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('duration_ms', sa.Float(), nullable=True),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('error', sa.String(length=500), nullable=True),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(['event_id'], ['ops_alert_event.id'],
                                name='fk_alert_delivery_event', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_alert_delivery_time', 'ops_alert_delivery', ['time'])
    op.create_table(
        'ops_alert_round',
        sa.Column('slot', sa.DateTime(timezone=True), nullable=False),
        sa.Column('holder', sa.String(length=96), nullable=False),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('slot'),
    )


def downgrade() -> None:
    op.drop_table('ops_alert_round')
    op.drop_index('ix_alert_delivery_time', table_name='ops_alert_delivery')
    op.drop_table('ops_alert_delivery')
    op.drop_index('ix_alert_event_rule_started', table_name='ops_alert_event')
    op.drop_index('ix_alert_event_state_started', table_name='ops_alert_event')
    op.drop_table('ops_alert_event')
    op.drop_table('ops_alert_rule')
