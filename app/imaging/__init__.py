"""Image bytes <-> pixel arrays for the model, shared by the CLI and the HTTP service.

Three synchronous calls (the service runs them in worker threads): `decode.decode_image`, then the model
upscales `DecodedImage.rgb`, then `image.finish_upscale` and `encode.encode_image`. Choices a caller can
observe:

- Input: PNG, JPEG and WebP, told apart by their signature. Other known types (GIF, BMP, TIFF, SVG, HTML,
  PDF, HEIF, ...) raise UnsupportedFormat (415); bytes of no known type, empty or broken, raise BadImage
  (400).
- Animated PNG and WebP raise UnsupportedFormat: there is no single frame to upscale and picking one would
  silently drop the rest. An MPO (a JPEG with extra frames, as some cameras write) is not an animation: its
  primary image is used. GIF is rejected as a format, animated or not.
- Limits: the pixel count is checked from the header (`header.read_header`), before any pixel data is
  decompressed, against `max_pixels` and Pillow's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`, left
  as it is), both raising TooLarge. `Image.open` only warns between one and two times that limit; checking
  the same limit ourselves makes it an error without touching the process-wide warning filters, which are
  not thread-safe. A PNG's image data may inflate to exactly what its header says and no more, its ICC
  profile to at most `image.MAX_ICC_PROFILE_BYTES` (larger ones are dropped), and its text chunks are never
  inflated (`png_chunks`); a JPEG may have at most `header.MAX_JPEG_SCANS` scans, and a header that
  Pillow reads in at most `jpeg_segments.MAX_HEADER_STEPS` steps (segments and padding bytes), with at
  most `jpeg_segments.MAX_PARSED_BYTES` of what it takes apart in Python (tables, EXIF, Photoshop).
- EXIF orientation is applied; EXIF itself is not copied to the output (it may hold a location). An ICC
  profile is carried to the output when it describes the output's colour space (RGB or grey).
- Modes: grey (1-bit, L, 16-bit) stays grey and grey + alpha stays LA, except in WebP, which has no grey
  mode; palettes become RGB, or RGBA when they have transparency; CMYK becomes RGB (without colour
  management, and a CMYK profile is dropped).
- Alpha: `rgb` is premultiplied by alpha in every DecodedImage, so the model never spreads the colour of
  invisible pixels into visible ones; `encode_image` un-premultiplies. JPEG has no alpha: such images are
  composited on white.
- Bit depth: 16-bit PNGs decode to uint16 arrays and encode back to 16-bit PNG (grey, grey + alpha, RGB,
  RGBA; all but plain grey through `png16` (libpng, via imagecodecs), as Pillow holds those at 8 bits
  only); JPEG and WebP output is rounded to 8 bits.
"""
