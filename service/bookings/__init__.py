"""Bookings: accept, Start/Join clicks, reads, attendance and the timeline."""
