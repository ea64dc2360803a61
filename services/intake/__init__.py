"""Intake: the one window (一窗受理) every request enters through."""
