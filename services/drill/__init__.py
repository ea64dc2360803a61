"""Fault drills (not a service; runs from `onewindow drill`): a private stack under load, one fault,
then an account of every case offered — recorded, lost, duplicated."""
