"""ipt_compose: composable self-supervised pretext tasks over one joint-label algebra.

The public surface: :class:`Compose`, the pretexts (:class:`ChannelDrop`, :class:`RegionDrop`,
:class:`Rotation`, :class:`Cutout`, and the :class:`Pretext` base to write your own), the mixers
(:class:`MixUp`, :class:`CutMix`, :func:`from_kornia`, and the :class:`Mixer` base to write your
own), :class:`JointModel`, :func:`joint_cross_entropy`, :func:`self_distillation_loss`,
:class:`LabelSpace` and :class:`JointTarget`.
"""

from ipt_compose.compose import Compose, PretextBatch
from ipt_compose.loss import joint_cross_entropy, self_distillation_loss
from ipt_compose.mix import CutMix, Mixer, MixUp, from_kornia
from ipt_compose.model import JointModel, JointOutput
from ipt_compose.pretext import ChannelDrop, Cutout, Pretext, RegionDrop, Rotation
from ipt_compose.space import LabelSpace
from ipt_compose.target import JointTarget

__version__ = "0.2.0"

__all__ = [
    "ChannelDrop",
    "Compose",
    "CutMix",
    "Cutout",
    "JointModel",
    "JointOutput",
    "JointTarget",
    "LabelSpace",
    "MixUp",
    "Mixer",
    "Pretext",
    "PretextBatch",
    "RegionDrop",
    "Rotation",
    "__version__",
    "from_kornia",
    "joint_cross_entropy",
    "self_distillation_loss",
]
