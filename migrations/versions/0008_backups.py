"""backup history and schedules

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 18:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ops_backup',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('target', sa.String(length=32), nullable=False),
        sa.Column('engine', sa.String(length=16), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('file', sa.String(length=255), nullable=True),
        sa.Column('size', sa.BigInteger(), nullable=True),
        sa.Column('sha256', sa.String(length=64), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('duration_ms', sa.Integer(), nullable=True),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('note', sa.String(length=500), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('deleted_by', sa.String(length=64), nullable=True),
        sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('verify_ok', sa.Boolean(), nullable=True),
        sa.Column('verify_message', sa.Text(), nullable=True),
        sa.Column('verify_tables', sa.Integer(), nullable=True),
        sa.Column('verify_rows', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_backup_target_started', 'ops_backup', ['target', 'started_at'])
    op.create_index('ix_backup_status', 'ops_backup', ['status'])
    op.create_table(
        'ops_backup_restore',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('backup_id', sa.Integer(), nullable=False),
        sa.Column('target', sa.String(length=32), nullable=False),
        sa.Column('safety_backup_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('requested_by', sa.String(length=64), nullable=False),
        sa.Column('note', sa.String(length=500), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('duration_ms', sa.Integer(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['backup_id'], ['ops_backup.id'],
                                name='fk_backup_restore_backup'),
        sa.ForeignKeyConstraint(['safety_backup_id'], ['ops_backup.id'],
                                name='fk_backup_restore_safety'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_backup_restore_started', 'ops_backup_restore', ['started_at'])
    op.create_table(
        'ops_backup_schedule',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('target', sa.String(length=32), nullable=False),
        sa.Column('cron', sa.String(length=100), nullable=False),
        sa.Column('keep_last', sa.Integer(), nullable=True),
        sa.Column('keep_days', sa.Integer(), nullable=True),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('updated_by', sa.String(length=64), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_backup_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('target', name='uq_backup_schedule_target'),
    )
    op.create_table(
        'ops_backup_lock',
        sa.Column('target', sa.String(length=32), nullable=False),
        sa.Column('operation', sa.String(length=32), nullable=False),
        sa.Column('holder', sa.String(length=64), nullable=False),
        sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('target'),
    )


def downgrade() -> None:
    op.drop_table('ops_backup_lock')
    op.drop_table('ops_backup_schedule')
    op.drop_index('ix_backup_restore_started', table_name='ops_backup_restore')
    op.drop_table('ops_backup_restore')
    op.drop_index('ix_backup_status', table_name='ops_backup')
    op.drop_index('ix_backup_target_started', table_name='ops_backup')
    op.drop_table('ops_backup')
