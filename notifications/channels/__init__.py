"""Channels beside email that reach people where they work: 浙政钉/DingTalk work notifications,
DingTalk group robots, SMS. ``base`` is the contract every transport keeps; the governor and the
outbox (notifications/governor.py, the dispatcher) speak only to it."""
