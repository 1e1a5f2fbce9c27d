"""Tickets for developers: the tracker interface (base), the file and Redmine backends, and the desk that
deduplicates tickets by failure signature and keeps what a failing tracker could not take.

The Redmine backend is imported on demand (`opsrunner.tickets.redmine`): most runs never need it.
"""

from .base import Ticket, TicketRequest, Tracker, TrackerError, signature_tag, signature_token
from .desk import PENDING_FILE, TicketDesk, TicketOutcome, tracker_from_settings
from .files import FileTracker, TicketRecord

__all__ = [
    "PENDING_FILE",
    "FileTracker",
    "Ticket",
    "TicketDesk",
    "TicketOutcome",
    "TicketRecord",
    "TicketRequest",
    "Tracker",
    "TrackerError",
    "signature_tag",
    "signature_token",
    "tracker_from_settings",
]
