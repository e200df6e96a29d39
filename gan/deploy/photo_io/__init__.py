"""Reading and writing real photos for the ``enhance`` command.

``read_photo`` turns a JPEG, PNG, TIFF, WebP, BMP, HEIC/HEIF or AVIF file into a
:class:`Photo`: upright ``(H, W, 3) float32`` RGB in [0, 1] plus what is needed to write the result
back faithfully (alpha, bit depth, grayscale, EXIF, ICC profile). ``write_photo`` writes enhanced
RGB in the format the output suffix names, atomically.

The modules, in the order a read and then a write use them; each one's docstring gives its
choices and why:

- photo: the Photo record and PhotoError.
- formats: the suffixes, what each format can store, the HEIF/AVIF plugins.
- opening: a file opened and its size checked before any pixel is decoded.
- decode: the pixels as stored, by Pillow, libpng (16-bit PNG) or tifffile (16-bit TIFF).
- metadata: the EXIF orientation, the EXIF and ICC profile carried to the output.
- read: ``read_photo``.
- encode: pixels to a file, by Pillow, libpng or tifffile.
- write: ``write_photo``.

Not carried: XMP and IPTC metadata, further frames of multi-frame files, HEIF depth maps,
auxiliary images and thumbnails. 16-bit grayscale+alpha TIFFs cannot be read (Pillow cannot
identify them).
"""

from __future__ import annotations

from gan.deploy.photo_io.formats import SUFFIXES, output_format
from gan.deploy.photo_io.photo import Photo, PhotoError
from gan.deploy.photo_io.read import DEFAULT_MAX_PIXELS, read_photo
from gan.deploy.photo_io.write import write_photo

__all__ = ["DEFAULT_MAX_PIXELS", "SUFFIXES", "Photo", "PhotoError", "output_format", "read_photo",
           "write_photo"]
