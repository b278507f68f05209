"""Fast implementations of the reference layers in :mod:`snakeaudio.nn`."""
