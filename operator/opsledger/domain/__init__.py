"""Pure logic: no I/O, no clock. Time is always a parameter."""
