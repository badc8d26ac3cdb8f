"""Small seeded image files for the image-feature tests."""
import numpy as np


def write_image(path, seed, size=(40, 30)):
    """A ``size`` (width, height) RGB PNG (or the format ``path``'s suffix
    names) of seeded noise; returns its path as a string."""
    from PIL import Image
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)
