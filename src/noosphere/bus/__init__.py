"""The message bus: typed envelopes, durable priority mailboxes, topics and request/reply."""

from noosphere.bus.envelope import Delivery, Envelope, Kind
from noosphere.bus.service import Bus, Sent, create_transport
from noosphere.bus.transport import MailboxStats, Transport

__all__ = ["Bus", "Delivery", "Envelope", "Kind", "MailboxStats", "Sent", "Transport", "create_transport"]
