"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 11:35:06.109667
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('device_activity',
    sa.Column('dev_eui', sa.String(length=16), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('network_device_id', sa.String(length=200), nullable=True),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('uplink_count', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('last_f_cnt', sa.BigInteger(), nullable=True),
    sa.Column('last_f_port', sa.SmallInteger(), nullable=True),
    sa.Column('last_payload', sa.LargeBinary(), nullable=True),
    sa.Column('last_gateway_id', sa.String(length=128), nullable=True),
    sa.Column('last_rssi_dbm', sa.Float(), nullable=True),
    sa.Column('last_snr_db', sa.Float(), nullable=True),
    sa.Column('last_spreading_factor', sa.SmallInteger(), nullable=True),
    sa.Column('last_join_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('network_battery_percent', sa.Float(), nullable=True),
    sa.Column('network_margin_db', sa.SmallInteger(), nullable=True),
    sa.PrimaryKeyConstraint('dev_eui', name=op.f('pk_device_activity'))
    )
    op.create_index(op.f('ix_device_activity_municipality_id'), 'device_activity', ['municipality_id'], unique=False)
    op.create_table('gateway_heard',
    sa.Column('gateway_id', sa.String(length=128), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('last_heard_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('gateway_id', 'municipality_id', name=op.f('pk_gateway_heard'))
    )
    op.create_table('gateway_heartbeat',
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('gateway_id', sa.String(length=128), nullable=False),
    sa.Column('online', sa.Boolean(), nullable=False),
    sa.Column('rx_packets', sa.BigInteger(), nullable=True),
    sa.Column('rx_packets_ok', sa.BigInteger(), nullable=True),
    sa.Column('tx_packets', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('time', 'gateway_id', name=op.f('pk_gateway_heartbeat'))
    )
    op.create_table('municipality',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('district', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_municipality')),
    sa.UniqueConstraint('slug', name=op.f('uq_municipality_slug'))
    )
    op.create_table('reading',
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.String(length=40), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('quality', sa.SmallInteger(), server_default=sa.text('0'), nullable=False),
    sa.PrimaryKeyConstraint('device_id', 'quantity', 'time', name=op.f('pk_reading'))
    )
    op.create_table('reception',
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('uplink_key', sa.String(length=64), nullable=False),
    sa.Column('gateway_id', sa.String(length=128), nullable=False),
    sa.Column('antenna', sa.SmallInteger(), nullable=False),
    sa.Column('dev_eui', sa.String(length=16), nullable=True),
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('rssi_dbm', sa.Float(), nullable=True),
    sa.Column('snr_db', sa.Float(), nullable=True),
    sa.Column('channel', sa.Integer(), nullable=True),
    sa.Column('spreading_factor', sa.SmallInteger(), nullable=True),
    sa.PrimaryKeyConstraint('received_at', 'uplink_key', 'gateway_id', 'antenna', name=op.f('pk_reception'))
    )
    op.create_index('ix_reception_gateway_id_received_at', 'reception', ['gateway_id', sa.literal_column('received_at DESC')], unique=False)
    op.create_table('rejected_message',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('topic', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rejected_message'))
    )
    op.create_index(op.f('ix_rejected_message_received_at'), 'rejected_message', ['received_at'], unique=False)
    op.create_table('uplink',
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('uplink_key', sa.String(length=64), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('network_server', sa.String(length=20), nullable=False),
    sa.Column('dev_eui', sa.String(length=16), nullable=True),
    sa.Column('device_id', sa.Integer(), nullable=True),
    sa.Column('network_device_id', sa.String(length=200), nullable=True),
    sa.Column('application_id', sa.String(length=200), nullable=True),
    sa.Column('f_cnt', sa.BigInteger(), nullable=True),
    sa.Column('f_port', sa.SmallInteger(), nullable=True),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('network_decoded', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('decoded', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('decode_status', sa.String(length=20), nullable=False),
    sa.Column('decoder_source', sa.String(length=20), nullable=True),
    sa.Column('codec_id', sa.String(length=200), nullable=True),
    sa.Column('decode_error', sa.Text(), nullable=True),
    sa.Column('confirmed', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('simulated', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('spreading_factor', sa.SmallInteger(), nullable=True),
    sa.Column('bandwidth_hz', sa.Integer(), nullable=True),
    sa.Column('frequency_hz', sa.BigInteger(), nullable=True),
    sa.Column('data_rate', sa.SmallInteger(), nullable=True),
    sa.Column('airtime_s', sa.Float(), nullable=True),
    sa.Column('gateway_count', sa.SmallInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('best_gateway_id', sa.String(length=128), nullable=True),
    sa.Column('best_rssi_dbm', sa.Float(), nullable=True),
    sa.Column('best_snr_db', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('received_at', 'uplink_key', name=op.f('pk_uplink'))
    )
    op.create_index('ix_uplink_dev_eui_received_at', 'uplink', ['dev_eui', sa.literal_column('received_at DESC')], unique=False)
    op.create_index('ix_uplink_unclaimed', 'uplink', ['dev_eui', 'received_at'], unique=False, postgresql_where=sa.text("decode_status = 'unclaimed'"))
    op.create_table('api_key',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('secret_hash', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipality.id'], name=op.f('fk_api_key_municipality_id_municipality'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_key')),
    sa.UniqueConstraint('prefix', name=op.f('uq_api_key_prefix'))
    )
    op.create_index(op.f('ix_api_key_municipality_id'), 'api_key', ['municipality_id'], unique=False)
    op.create_table('device',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('dev_eui', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('codec_id', sa.String(length=200), nullable=True),
    sa.Column('decoder_source', sa.String(length=20), nullable=True),
    sa.Column('use_case', sa.String(length=40), nullable=True),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('tags', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipality.id'], name=op.f('fk_device_municipality_id_municipality'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device')),
    sa.UniqueConstraint('dev_eui', name=op.f('uq_device_dev_eui'))
    )
    op.create_index(op.f('ix_device_municipality_id'), 'device', ['municipality_id'], unique=False)
    op.create_index(op.f('ix_device_updated_at'), 'device', ['updated_at'], unique=False)
    op.create_index(op.f('ix_device_use_case'), 'device', ['use_case'], unique=False)
    op.create_table('gateway',
    sa.Column('gateway_id', sa.String(length=128), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('altitude_m', sa.Float(), nullable=True),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_uplink_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('online', sa.Boolean(), nullable=True),
    sa.Column('status_changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipality.id'], name=op.f('fk_gateway_municipality_id_municipality'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('gateway_id', name=op.f('pk_gateway'))
    )
    op.create_index(op.f('ix_gateway_municipality_id'), 'gateway', ['municipality_id'], unique=False)
    op.create_table('device_state',
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.String(length=40), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('quality', sa.SmallInteger(), server_default=sa.text('0'), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], name=op.f('fk_device_state_device_id_device'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('device_id', 'quantity', name=op.f('pk_device_state'))
    )


def downgrade() -> None:
    op.drop_table('device_state')
    op.drop_index(op.f('ix_gateway_municipality_id'), table_name='gateway')
    op.drop_table('gateway')
    op.drop_index(op.f('ix_device_use_case'), table_name='device')
    op.drop_index(op.f('ix_device_updated_at'), table_name='device')
    op.drop_index(op.f('ix_device_municipality_id'), table_name='device')
    op.drop_table('device')
    op.drop_index(op.f('ix_api_key_municipality_id'), table_name='api_key')
    op.drop_table('api_key')
    op.drop_index('ix_uplink_unclaimed', table_name='uplink', postgresql_where=sa.text("decode_status = 'unclaimed'"))
    op.drop_index('ix_uplink_dev_eui_received_at', table_name='uplink')
    op.drop_table('uplink')
    op.drop_index(op.f('ix_rejected_message_received_at'), table_name='rejected_message')
    op.drop_table('rejected_message')
    op.drop_index('ix_reception_gateway_id_received_at', table_name='reception')
    op.drop_table('reception')
    op.drop_table('reading')
    op.drop_table('municipality')
    op.drop_table('gateway_heartbeat')
    op.drop_table('gateway_heard')
    op.drop_index(op.f('ix_device_activity_municipality_id'), table_name='device_activity')
    op.drop_table('device_activity')
