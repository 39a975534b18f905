"""Queue, idle reclaim, usage, port history, start heartbeats, per-user uids.

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


def upgrade() -> None:
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
        batch.add_column(sa.Column('end_reason', sa.String(length=40), nullable=True))
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('uid', sa.Integer(), nullable=True))
        batch.create_unique_constraint(op.f('uq_users_uid'), ['uid'])


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_constraint(op.f('uq_users_uid'), type_='unique')
        batch.drop_column('uid')
    with op.batch_alter_table('leases') as batch:
        for name in ('end_reason', 'util_samples', 'util_sum', *reversed(LEASE_TIMES)):
            batch.drop_column(name)
    op.drop_table('port_usage')
