"""background job runs, schedules and commands

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 18:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'ops_job_run',
        sa.Column('id', BigId, nullable=False),
        sa.Column('job_id', sa.String(length=191), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('func', sa.String(length=255), nullable=False),
        sa.Column('args', sa.JSON(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('origin', sa.String(length=16), nullable=False),
        sa.Column('process', sa.String(length=96), nullable=False),
        sa.Column('time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('duration_ms', sa.Float(), nullable=True),
        sa.Column('error_type', sa.String(length=255), nullable=True),
        sa.Column('error_message', sa.Text(), nullable=True),
        sa.Column('traceback', sa.Text(), nullable=True),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('retry_of', BigId, nullable=True),
        sa.Column('cancel_requested', sa.Boolean(), nullable=False),
        sa.Column('progress', sa.Float(), nullable=True),
        sa.Column('progress_message', sa.String(length=255), nullable=True),
        sa.Column('note', sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_job_run_status_time', 'ops_job_run', ['status', 'time'])
    op.create_index('ix_job_run_job_time', 'ops_job_run', ['job_id', 'time'])
    op.create_index('ix_job_run_time', 'ops_job_run', ['time'])
    op.create_table(
        'ops_job_schedule',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('process', sa.String(length=96), nullable=False),
        sa.Column('job_id', sa.String(length=191), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('func', sa.String(length=255), nullable=False),
        sa.Column('trigger', sa.String(length=255), nullable=False),
        sa.Column('next_run_time', sa.DateTime(timezone=True), nullable=True),
        sa.Column('paused', sa.Boolean(), nullable=False),
        sa.Column('wrapped', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('process', 'job_id', name='uq_job_schedule'),
    )
    op.create_index('ix_job_schedule_job', 'ops_job_schedule', ['job_id'])
    op.create_table(
        'ops_job_command',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('job_id', sa.String(length=191), nullable=False),
        sa.Column('run_id', BigId, nullable=True),
        sa.Column('process', sa.String(length=96), nullable=True),
        sa.Column('requested_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('claimed_by', sa.String(length=96), nullable=True),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('outcome', sa.String(length=16), nullable=True),
        sa.Column('message', sa.Text(), nullable=True),
        sa.Column('result_run_id', BigId, nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_job_command_open', 'ops_job_command', ['claimed_at', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_job_command_open', table_name='ops_job_command')
    op.drop_table('ops_job_command')
    op.drop_index('ix_job_schedule_job', table_name='ops_job_schedule')
    op.drop_table('ops_job_schedule')
    op.drop_index('ix_job_run_time', table_name='ops_job_run')
    op.drop_index('ix_job_run_job_time', table_name='ops_job_run')
    op.drop_index('ix_job_run_status_time', table_name='ops_job_run')
    op.drop_table('ops_job_run')
