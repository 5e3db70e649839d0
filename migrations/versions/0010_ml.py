"""ML models, predictions and evaluations

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 19:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'ops_ml_model',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('version', sa.String(length=64), nullable=False),
        sa.Column('task', sa.String(length=16), nullable=False),
        sa.Column('estimator', sa.String(length=255), nullable=False),
        sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('feature_names', sa.JSON(), nullable=False),
        sa.Column('classes', sa.JSON(), nullable=True),
        sa.Column('eval_sample', sa.JSON(), nullable=True),
        sa.Column('importance', sa.JSON(), nullable=True),
        sa.Column('importance_method', sa.String(length=64), nullable=True),
        sa.Column('process', sa.String(length=96), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name', 'version', name='uq_ml_model_name_version'),
    )
    op.create_table(
        'ops_ml_evaluation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.Column('metrics', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['model_id'], ['ops_ml_model.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_ml_evaluation_model_time', 'ops_ml_evaluation', ['model_id', 'time'])
    op.create_table(
        'ops_ml_prediction',
        sa.Column('id', BigId, nullable=False),
        sa.Column('pid', sa.String(length=32), nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('features', sa.JSON(), nullable=True),
        sa.Column('y_pred', sa.String(length=64), nullable=False),
        sa.Column('y_true', sa.String(length=64), nullable=True),
        sa.Column('labelled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('latency_ms', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_ml_prediction_model_time', 'ops_ml_prediction', ['model_id', 'time'])
    op.create_index('ix_ml_prediction_time', 'ops_ml_prediction', ['time'])
    op.create_index('ix_ml_prediction_pid', 'ops_ml_prediction', ['pid'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_ml_prediction_pid', table_name='ops_ml_prediction')
    op.drop_index('ix_ml_prediction_time', table_name='ops_ml_prediction')
    op.drop_index('ix_ml_prediction_model_time', table_name='ops_ml_prediction')
    op.drop_table('ops_ml_prediction')
    op.drop_index('ix_ml_evaluation_model_time', table_name='ops_ml_evaluation')
    op.drop_table('ops_ml_evaluation')
    op.drop_table('ops_ml_model')
