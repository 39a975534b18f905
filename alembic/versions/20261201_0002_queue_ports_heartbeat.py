"""Queue, idle reclaim, usage (per lease and per GPU-day), port history, start heartbeats,
per-user uids.

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


def upgrade() -> None:
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
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('uid', sa.Integer(), nullable=True))
        batch.create_unique_constraint(op.f('uq_users_uid'), ['uid'])


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_constraint(op.f('uq_users_uid'), type_='unique')
        batch.drop_column('uid')
    with op.batch_alter_table('leases') as batch:
        for name in ('end_reason', 'idle_exempt', *reversed(COUNTERS), 'util_samples',
                     'util_sum', *reversed(LEASE_TIMES)):
            batch.drop_column(name)
    op.drop_table('port_usage')
    op.drop_table('gpu_daily')
