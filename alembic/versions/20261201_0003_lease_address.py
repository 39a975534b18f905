"""Where a lease's Jupyter answers when it does not run on the bot's host (the Slurm node
of its job): the access URL and the proxy route go there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 12:10:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('leases') as batch:
        batch.add_column(sa.Column('address', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('leases') as batch:
        batch.drop_column('address')
