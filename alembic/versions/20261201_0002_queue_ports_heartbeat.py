"""Queue, idle reclaim, usage (per lease and per GPU-day), port history, start heartbeats,
per-user uids, and what access needs (environment, proxy label, SSH port, keys).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:15:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LEASE_TIMES = ("queued_at", "heartbeat_at", "idle_since", "idle_warned_at", "snoozed_until")
COUNTERS = ("util_peak", "mem_peak_mib", "idle_samples")
ACCESS = (("environment", sa.String(length=64)), ("route_label", sa.String(length=64)),
          ("ssh_port", sa.Integer()), ("host_key_fingerprint", sa.String(length=128)))


def upgrade() -> None:
    op.create_table('ssh_keys',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('public_key', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.String(length=128), nullable=False),
    sa.Column('comment', sa.String(length=255), nullable=True),
    sa.Column('added_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                            name=op.f('fk_ssh_keys_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ssh_keys'))
    )
    with op.batch_alter_table('ssh_keys') as batch:
        batch.create_index(batch.f('ix_ssh_keys_user_id'), ['user_id'], unique=False)
    op.create_table('gpu_daily',
    sa.Column('gpu_uuid', sa.String(length=96), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('samples', sa.Integer(), nullable=False),
    sa.Column('util_sum', sa.Integer(), nullable=False),
    sa.Column('leased_samples', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('gpu_uuid', 'day', name=op.f('pk_gpu_daily'))
    )
    op.create_table('port_usage',
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('host', 'port', name=op.f('pk_port_usage'))
    )
    with op.batch_alter_table('leases') as batch:
        for name in LEASE_TIMES:
            batch.add_column(sa.Column(name, sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('util_sum', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('util_samples', sa.Integer(), nullable=False,
                                   server_default='0'))
        for name in COUNTERS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('idle_exempt', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column('end_reason', sa.String(length=40), nullable=True))
        for name, kind in ACCESS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('uid', sa.Integer(), nullable=True))
        batch.create_unique_constraint(op.f('uq_users_uid'), ['uid'])


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_constraint(op.f('uq_users_uid'), type_='unique')
        batch.drop_column('uid')
    with op.batch_alter_table('leases') as batch:
        for name, _ in reversed(ACCESS):
            batch.drop_column(name)
        for name in ('end_reason', 'idle_exempt', *reversed(COUNTERS), 'util_samples',
                     'util_sum', *reversed(LEASE_TIMES)):
            batch.drop_column(name)
    op.drop_table('port_usage')
    op.drop_table('gpu_daily')
    op.drop_table('ssh_keys')
