"""Which frame of an EXIF-oriented image a source's annotations are in: the ``?frame=`` rule.

The raw frame is the file's pixel grid; the upright frame is the image as
``PIL.ImageOps.exif_transpose`` shows it, and as annotation tools and viewers show it (labelme
applies the EXIF orientation before showing an image and stores annotations in that upright
frame; Label Studio, FiftyOne and browsers show the upright image; pipelines reading with
OpenCV without EXIF handling annotate the raw frame). Neither is universal, so every source
takes ``?frame=upright|raw|auto`` (default ``upright``; :mod:`owl_data.sources._common`) and
:func:`annotation_frame` applies it to each image. The turn itself is
:mod:`owl_data.ingest.orientation`'s table.
"""

from __future__ import annotations

from dataclasses import dataclass

from owl_data.ingest.geometry import GeometryError
from owl_data.ingest.orientation import upright_size

__all__ = ["FRAMES", "AnnotationFrame", "annotation_frame"]


FRAMES: tuple[str, ...] = ("upright", "raw", "auto")
"""The values of a source's ``?frame=`` option; the first is the default."""


@dataclass(frozen=True)
class AnnotationFrame:
    """The frame a scene's annotations are in (:func:`annotation_frame`).

    Attributes:
        size: (W, H) in pixels of that frame: the grid the annotation's pixel coordinates,
            RLE sizes, label maps and mask arrays refer to.
        rotate: True when it is the raw (pre-EXIF) frame of an image with orientation 2..8,
            so every coordinate and mask is turned by the orientation; False when the
            annotations are taken as upright (orientation 1 included: both frames coincide).
        ambiguous: the annotation did not tell the frames apart and the option decided:
            orientation 2..8 and either no stated size or a stated size equal to both the
            raw and the upright size (orientations 2, 3, 4; square images).
    """

    size: tuple[int, int]
    rotate: bool
    ambiguous: bool

    @property
    def name(self) -> str:
        """``raw`` or ``upright``: the frame taken."""
        return "raw" if self.rotate else "upright"


def annotation_frame(declared: tuple[int, int] | None, raw: tuple[int, int], orientation: int,
                     frame: str = "upright") -> AnnotationFrame:
    """The frame annotations stating the size ``declared`` are in, by the source's ``frame`` option.

    The upright frame is the image as ``PIL.ImageOps.exif_transpose`` (and labelme, Label
    Studio, FiftyOne, browsers) shows it; the raw frame is the file's pixel grid.

    - ``upright`` (default): the annotations are in the upright frame; a stated size must
      be the upright size. A stated size equal to the raw size only (orientations 5..8,
      W != H) is ``size_mismatch``: an explicit frame is never overridden by a guess
      (``auto`` follows the stated size).
    - ``raw``: they are in the raw pixel grid; a stated size must be the raw size (one equal
      to the upright size only is ``size_mismatch``).
    - ``auto``: the frame whose size the annotation states; raw when both sizes match it
      (orientations 2, 3, 4, square images) or when it states none.

    With orientation 1 (or none, or an invalid tag) the frames coincide and every option
    gives the same result; such an image is never ambiguous.

    Args:
        declared: (W, H) stated by the annotation (file entry, label map size), or None.
        raw: (W, H) of the file's pixel grid before EXIF orientation.
        orientation: EXIF Orientation tag (1..8; anything else counts as 1).
        frame: one of :data:`FRAMES`.

    Raises:
        ValueError: ``frame`` is not one of :data:`FRAMES` (a bug: sources check it).
        GeometryError(``size_mismatch``): the stated size does not fit the frame the option
            takes (or matches neither frame).
    """
    if frame not in FRAMES:
        raise ValueError(f"frame {frame!r}: expected one of {', '.join(FRAMES)}")
    o = orientation if orientation in range(2, 9) else 1
    raw = (int(raw[0]), int(raw[1]))
    upright = upright_size(raw, o)
    stated = None if declared is None else (int(declared[0]), int(declared[1]))
    fits_raw, fits_upright = stated in (None, raw), stated in (None, upright)
    if not (fits_raw or fits_upright):
        raise GeometryError("size_mismatch", f"annotation size {stated} matches neither the file {raw} "
                                             f"nor upright {upright}")
    if o == 1:
        return AnnotationFrame(raw, False, False)
    ambiguous = fits_raw and fits_upright
    if frame == "upright" and not fits_upright:
        raise GeometryError("size_mismatch", f"annotation size {stated} is the raw size of an EXIF-{o} image "
                                             f"(upright {upright}); ?frame=upright needs the upright size: "
                                             "use ?frame=raw or ?frame=auto")
    if frame == "raw" and not fits_raw:
        raise GeometryError("size_mismatch", f"annotation size {stated} is the upright size of an EXIF-{o} image "
                                             f"(raw {raw}); ?frame=raw needs the raw size: "
                                             "use ?frame=upright or ?frame=auto")
    rotate = fits_raw if frame == "auto" else frame == "raw"
    return AnnotationFrame(raw if rotate else upright, rotate, ambiguous)
