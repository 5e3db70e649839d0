"""ingest keys; application and release on every row an agent's batch makes

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 20:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

TABLES = ('ops_ingest', 'ops_request', 'ops_query', 'ops_monitor_process', 'ops_job_run',
          'ops_job_schedule', 'ops_job_command', 'ops_ml_model', 'ops_ml_prediction',
          'ops_log_record', 'ops_profile_session', 'ops_profile_part')


def upgrade() -> None:
    op.create_table(
        'ops_ingest_key',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('app', sa.String(length=64), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('note', sa.String(length=200), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_by', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key_hash'),
    )
    with op.batch_alter_table('ops_ingest_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ops_ingest_key_app'), ['app'], unique=False)
    # Adding a column with a constant default is a catalogue change on
    # PostgreSQL 11+ and SQLite: no table rewrite, whatever the table's size.
    for table in TABLES:
        op.add_column(table, sa.Column('app', sa.String(length=64), nullable=False,
                                       server_default=''))
        op.add_column(table, sa.Column('release', sa.String(length=64), nullable=False,
                                       server_default=''))
    op.add_column('ops_query', sa.Column('error_type', sa.String(length=100), nullable=True))
    # jobs: the agent's id of a run (its events and the console's commands name it)
    op.add_column('ops_job_run', sa.Column('agent_run', sa.String(length=32), nullable=True))
    op.create_index('ix_job_run_agent_run', 'ops_job_run', ['agent_run'], unique=False)
    # ml: (columns the ML ingest adds go here)
    op.add_column('ops_ml_model', sa.Column('params', sa.JSON(), nullable=True))
    # profiler: (columns the profiler ingest adds go here)


def downgrade() -> None:
    # jobs: (drop what jobs added)
    op.drop_index('ix_job_run_agent_run', table_name='ops_job_run')
    with op.batch_alter_table('ops_job_run', schema=None) as batch_op:
        batch_op.drop_column('agent_run')
    # ml: (drop what ML added)
    with op.batch_alter_table('ops_ml_model', schema=None) as batch_op:
        batch_op.drop_column('params')
    # profiler: (drop what the profiler added)
    with op.batch_alter_table('ops_query', schema=None) as batch_op:
        batch_op.drop_column('error_type')
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('release')
            batch_op.drop_column('app')
    with op.batch_alter_table('ops_ingest_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ops_ingest_key_app'))
    op.drop_table('ops_ingest_key')
