"""nengoseg.loihi: map converted networks onto nengo-loihi (emulator by default, board with NxSDK)."""
