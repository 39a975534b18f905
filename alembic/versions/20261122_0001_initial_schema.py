"""Initial schema: users, leases, GPU and port allocations, GPU usage, audit.

Times are stored as naive UTC (bot.db.types.UtcDateTime), durations as seconds, GPU
UUID lists as comma-separated text.

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 05:42:28.123771

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('gpu_usage',
    sa.Column('gpu_uuid', sa.String(length=96), nullable=False),
    sa.Column('last_leased_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('gpu_uuid', name=op.f('pk_gpu_usage'))
    )
    op.create_table('users',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users'))
    )
    op.create_table('leases',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('status', sa.Enum('pending_approval', 'starting', 'active', 'released', 'expired', 'denied', 'failed', name='leasestatus', native_enum=False, length=20), nullable=False),
    sa.Column('duration_s', sa.Integer(), nullable=False),
    sa.Column('gpu_count', sa.Integer(), nullable=False),
    sa.Column('gpu_model', sa.String(length=64), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('gpu_uuids', sa.Text(), nullable=False),
    sa.Column('port', sa.Integer(), nullable=True),
    sa.Column('container_id', sa.String(length=80), nullable=True),
    sa.Column('container_name', sa.String(length=80), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.Column('password_token', sa.Text(), nullable=True),
    sa.Column('reminders_sent', sa.String(length=255), nullable=False),
    sa.Column('decision_by', sa.String(length=32), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('channel_id', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_leases_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leases'))
    )
    with op.batch_alter_table('leases', schema=None) as batch_op:
        batch_op.create_index('ix_leases_status_expires_at', ['status', 'expires_at'], unique=False)
        batch_op.create_index('ix_leases_user_id_status', ['user_id', 'status'], unique=False)

    op.create_table('audit',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('lease_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['lease_id'], ['leases.id'], name=op.f('fk_audit_lease_id_leases'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit'))
    )
    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_lease_id'), ['lease_id'], unique=False)

    op.create_table('gpu_allocations',
    sa.Column('gpu_uuid', sa.String(length=96), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('lease_id', sa.Integer(), nullable=False),
    sa.Column('allocated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['lease_id'], ['leases.id'], name=op.f('fk_gpu_allocations_lease_id_leases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('gpu_uuid', name=op.f('pk_gpu_allocations'))
    )
    with op.batch_alter_table('gpu_allocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gpu_allocations_lease_id'), ['lease_id'], unique=False)

    op.create_table('port_allocations',
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('lease_id', sa.Integer(), nullable=False),
    sa.Column('allocated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['lease_id'], ['leases.id'], name=op.f('fk_port_allocations_lease_id_leases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('host', 'port', name=op.f('pk_port_allocations'))
    )
    with op.batch_alter_table('port_allocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_port_allocations_lease_id'), ['lease_id'], unique=False)



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('port_allocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_port_allocations_lease_id'))

    op.drop_table('port_allocations')
    with op.batch_alter_table('gpu_allocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gpu_allocations_lease_id'))

    op.drop_table('gpu_allocations')
    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_lease_id'))
        batch_op.drop_index(batch_op.f('ix_audit_at'))

    op.drop_table('audit')
    with op.batch_alter_table('leases', schema=None) as batch_op:
        batch_op.drop_index('ix_leases_user_id_status')
        batch_op.drop_index('ix_leases_status_expires_at')

    op.drop_table('leases')
    op.drop_table('users')
    op.drop_table('gpu_usage')
