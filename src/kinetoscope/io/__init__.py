"""Reading, probing and writing video and image files (PyAV for video, Pillow for images).

Import from the modules themselves, e.g. ``from kinetoscope.io.video import read_video,
write_video, probe``; this package file stays empty so importing one reader never pulls in
the others' dependencies.
"""
