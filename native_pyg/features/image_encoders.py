r"""Image encoders for an image modality: a vision model that maps a batch of
images to one feature row each, with its standard preprocessing.

:func:`load_image_encoder` builds one of

* a `torchvision <https://pytorch.org/vision>`_ classification model by name
  (``'resnet50'``, ``'vit_b_16'``, any :func:`torchvision.models.get_model`
  name), whose classification head is removed: a row is the penultimate
  features (2048-d for ResNet-50, 768-d for ViT-B/16);
* the image tower of a CLIP model through
  `open_clip <https://github.com/mlfoundations/open_clip>`_:
  ``'clip:ViT-B-32'``, or ``'clip:ViT-B-32:laion2b_s34b_b79k'`` with a
  pretrained tag (downloaded by open_clip where the machine can fetch it).

Weights: :obj:`None` or ``'none'`` (random init, seeded: tries the pipeline
without a download), ``'default'`` (torchvision's default weights,
downloaded by torchvision), or the path of a local weights file, read
without executing anything in it.
"""
from __future__ import annotations

import hashlib
import importlib
import os.path as osp
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from native_pyg.features.torchvision_import import import_torchvision as import_torchvision_anyway

#: a few valid model names, for error messages and ``--help``
EXAMPLE_MODELS = ('resnet18', 'resnet50', 'resnet152', 'vit_b_16', 'vit_b_32', 'vit_l_16',
                  'clip:ViT-B-32', 'clip:ViT-B-32:laion2b_s34b_b79k')


def import_torchvision():
    """The :mod:`torchvision` module, importable beside a CPU-only torch
    (:func:`~native_pyg.features.torchvision_import.import_torchvision`).

    Raises:
        ImportError: torchvision or Pillow is not installed.
    """
    try:
        importlib.import_module('PIL.Image')  # decodes the images: needed as much
        return import_torchvision_anyway()
    except ImportError:
        raise ImportError("image features need torchvision and Pillow: "
                          "pip install 'native_pyg[image]'") from None


def _file_identity(path: str) -> Dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return {'file': osp.abspath(path), 'size': osp.getsize(path), 'sha256': digest.hexdigest()}


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


class ImageEncoder:
    r"""A vision model that maps images to feature rows.

    Args:
        module (torch.nn.Module): Maps a ``[B, 3, H, W]`` float batch to
            ``[B, dim]`` features.
        transform (callable): A :class:`PIL.Image.Image` (RGB) to the
            ``[3, H, W]`` float tensor ``module`` expects.
        dim (int): The size of a row.
        name (str): The model name, as given to :func:`load_image_encoder`.
        weights (str or dict): What the weights are: ``'none'`` (random
            init), ``'default'``, a pretrained tag, or a file's identity.
        library (str): The library and version that built the model.
        device (str): Where ``module`` runs. (default: ``'cpu'``)
    """

    def __init__(self, module: nn.Module, transform: Callable[[Any], Tensor], dim: int,
                 name: str, weights: Union[str, Dict[str, Any]], library: str,
                 device: str = 'cpu'):
        self.module = module.to(device).eval()
        self.transform = transform
        self.dim = int(dim)
        self.name = name
        self.weights = weights
        self.library = library
        self.device = torch.device(device)

    def settings(self) -> Dict[str, Any]:
        """What decides the rows, as JSON values: the model, its weights
        (a file by its path, size and sha256) and the library version."""
        return {'model': self.name, 'weights': self.weights, 'library': self.library}

    def encode(self, batch: Tensor) -> Tensor:
        """``[B, dim]`` float32 CPU features of a ``[B, 3, H, W]`` batch."""
        with torch.inference_mode():
            out = self.module(batch.to(self.device))
        return out.float().cpu()

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.name}, dim={self.dim})'


def _remove_head(net: nn.Module, name: str, torchvision) -> int:
    """Replaces the classification head by :class:`torch.nn.Identity`;
    returns the size of the features that fed it."""
    models = torchvision.models
    if isinstance(net, models.ResNet):
        dim = net.fc.in_features
        net.fc = nn.Identity()
        return dim
    if isinstance(net, models.VisionTransformer):
        dim = next(m for m in net.heads.modules() if isinstance(m, nn.Linear)).in_features
        net.heads = nn.Identity()
        return dim
    for attribute in ('fc', 'head', 'classifier'):
        head = getattr(net, attribute, None)
        if isinstance(head, nn.Linear):
            setattr(net, attribute, nn.Identity())
            return head.in_features
        # e.g. (Dropout, Linear), or VGG's MLP whose last Linear is the head
        if isinstance(head, nn.Sequential) and len(head) and isinstance(head[-1], nn.Linear):
            dim = head[-1].in_features
            head[-1] = nn.Identity()
            return dim
    raise ValueError(f"cannot find the classification head of {name!r}: "
                     f"use a ResNet, a ViT or a model with a Linear 'fc', 'head' or 'classifier'")


def _read_state_dict(path: str) -> Dict[str, Tensor]:
    try:
        # weights_only: the unpickler refuses anything but tensors and containers
        loaded = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:
        raise ValueError(f"weights file {path!r} is not a state dict that loads safely "
                         f"({_one_line(error)})") from None
    if isinstance(loaded, dict) and set(loaded) in ({'state_dict'}, {'model'}):
        loaded = next(iter(loaded.values()))  # a checkpoint that wraps the state dict
    if not (isinstance(loaded, dict) and loaded
            and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in loaded.items())):
        raise ValueError(f"weights file {path!r} is not a state dict (names to tensors)")
    return loaded


def _load_weights_file(net: nn.Module, path: str, name: str, remove_head: Callable[[], int]
                       ) -> int:
    """Loads ``path`` into ``model``, with or without its head; returns
    ``remove_head()``."""
    state = _read_state_dict(path)
    try:
        if set(state) == set(net.state_dict()):  # a full classification state dict
            net.load_state_dict(state, strict=True)
            return remove_head()
        dim = remove_head()
        wanted = set(net.state_dict())
        if set(state) != wanted:
            missing, unexpected = sorted(wanted - set(state)), sorted(set(state) - wanted)
            raise ValueError(f"weights file {path!r} does not fit {name}: "
                             f"{len(missing)} missing keys {missing[:2]}, "
                             f"{len(unexpected)} unexpected {unexpected[:2]}")
        net.load_state_dict(state, strict=True)
        return dim
    except RuntimeError as error:  # e.g. a shape mismatch, reported over many lines
        raise ValueError(f"weights file {path!r} does not fit {name} "
                         f"({_one_line(error)})") from None


def _torchvision_encoder(model_name: str, weights: Optional[str], device: str) -> ImageEncoder:
    torchvision = import_torchvision()
    models = torchvision.models
    known = models.list_models(module=models)  # the classification models
    if model_name not in known:
        raise ValueError(f"unknown image model {model_name!r}: use a torchvision classification "
                         f"model or clip:<open_clip architecture>, e.g. "
                         f"{', '.join(EXAMPLE_MODELS)}")
    default = models.get_model_weights(model_name).DEFAULT
    # fork_rng: the seeded init is deterministic and leaves the caller's RNG as it was
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = models.get_model(model_name, weights=default if weights == 'default' else None)
    if weights in (None, 'none'):
        described: Union[str, Dict[str, Any]] = 'none'
        dim = _remove_head(net, model_name, torchvision)
    elif weights == 'default':
        described = {'default': str(default)}  # e.g. ResNet50_Weights.IMAGENET1K_V2
        dim = _remove_head(net, model_name, torchvision)
    elif osp.isfile(weights):
        described = _file_identity(weights)
        dim = _load_weights_file(net, weights, model_name,
                                 lambda: _remove_head(net, model_name, torchvision))
    else:
        raise ValueError(f"image model weights must be 'none', 'default' or a file; "
                         f"no file {weights!r}")
    # the weights' own preprocessing (resize, centre crop, normalise); it takes a
    # PIL image and builds no download
    return ImageEncoder(net, default.transforms(), dim, model_name, described,
                        f'torchvision {torchvision.__version__}', device)


def _parse_clip_name(model_name: str) -> Tuple[str, Optional[str]]:
    parts = model_name.split(':')
    if len(parts) not in (2, 3) or not parts[1]:
        raise ValueError(f"a CLIP image model is clip:<architecture>[:<pretrained tag>], "
                         f"e.g. clip:ViT-B-32; got {model_name!r}")
    return parts[1], (parts[2] or None) if len(parts) == 3 else None


def _clip_encoder(model_name: str, weights: Optional[str], device: str) -> ImageEncoder:
    arch, tag = _parse_clip_name(model_name)
    import_torchvision()  # open_clip imports torchvision: make that import work first
    try:
        import open_clip
    except ImportError:
        raise ImportError("CLIP image features need open_clip: "
                          "pip install 'native_pyg[clip]'") from None
    if arch not in open_clip.list_models():
        raise ValueError(f"unknown CLIP architecture {arch!r}: e.g. ViT-B-32, ViT-B-16, "
                         f"ViT-L-14 (open_clip.list_models() has them all)")
    pretrained: Optional[str] = tag
    described: Union[str, Dict[str, Any]] = {'pretrained': tag} if tag else 'none'
    if weights == 'default':
        raise ValueError("CLIP weights have no default: name a pretrained tag, e.g. "
                         "clip:ViT-B-32:laion2b_s34b_b79k, or pass a weights file")
    if weights not in (None, 'none'):
        if tag:
            raise ValueError(f"give a pretrained tag ({tag!r}) or a weights file, not both")
        if not osp.isfile(weights):
            raise ValueError(f"CLIP weights must be 'none' or a file; no file {weights!r}")
        if weights.endswith(('.npz', '.npy')):
            raise ValueError(f"CLIP weights file {weights!r}: use a .safetensors or a "
                             f"PyTorch state dict file")
        if not weights.endswith('.safetensors'):
            _read_state_dict(weights)  # refused here unless it loads without running code
        pretrained, described = osp.abspath(weights), _file_identity(weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            net, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
        except ImportError:
            raise
        except Exception as error:  # a tag it cannot fetch, a file that does not fit
            raise ValueError(f"cannot build {model_name} with weights {weights or 'none'}: "
                             f"{_one_line(error)}") from None
    visual = net.visual  # the image tower alone: encode_image(x) is visual(x)
    return ImageEncoder(visual, preprocess, visual.output_dim, model_name, described,
                        f'open_clip {open_clip.__version__}', device)


def load_image_encoder(name: str = 'resnet50', weights: Optional[str] = None,
                       device: str = 'cpu') -> ImageEncoder:
    r"""An image encoder by name, with its standard preprocessing.

    Args:
        name (str): A torchvision classification model (``'resnet18'`` ...
            ``'resnet152'``, ``'vit_b_16'``, ``'vit_b_32'``, ``'vit_l_16'``,
            any :func:`torchvision.models.get_model` name), whose head is
            removed, or ``'clip:<architecture>[:<pretrained tag>]'`` for the
            image tower of an open_clip model. (default: ``'resnet50'``)
        weights (str, optional): :obj:`None` or ``'none'``: random init,
            seeded (deterministic; tries the pipeline without a download).
            ``'default'``: torchvision's default weights, downloaded by
            torchvision where the machine can fetch them. A path: a local
            weights file, loaded with ``torch.load(weights_only=True)``
            (nothing in it runs); for torchvision a state dict with or
            without the classification head; for CLIP a ``.safetensors`` or
            state dict file of the whole CLIP model (both towers) that
            open_clip loads. (default: :obj:`None`)
        device (str): Where the model runs. (default: ``'cpu'``)

    Raises:
        ImportError: torchvision, Pillow (or open_clip for CLIP) is missing.
        ValueError: an unknown model, or a weights file that is not a state
            dict of that model.
    """
    if name.startswith('clip:'):
        return _clip_encoder(name, weights, device)
    return _torchvision_encoder(name, weights, device)
