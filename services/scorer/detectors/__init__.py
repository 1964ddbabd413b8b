"""Anomaly detectors behind one small protocol: higher raw score means more anomalous."""

from services.scorer.detectors.autoencoder import AutoencoderDetector
from services.scorer.detectors.base import Detector
from services.scorer.detectors.hst import HalfSpaceTreesDetector
from services.scorer.detectors.lof import LOFDetector
from services.scorer.detectors.ocsvm import OneClassSVMDetector
from services.scorer.detectors.profile import ProfileDetector

BATCH_DETECTORS: dict[str, type[Detector]] = {
    "lof": LOFDetector,
    "ocsvm": OneClassSVMDetector,
    "autoencoder": AutoencoderDetector,
    "profile": ProfileDetector,
}
ONLINE_DETECTORS: dict[str, type[Detector]] = {"hst": HalfSpaceTreesDetector}
ALL_DETECTORS: dict[str, type[Detector]] = {**BATCH_DETECTORS, **ONLINE_DETECTORS}

__all__ = [
    "ALL_DETECTORS",
    "BATCH_DETECTORS",
    "ONLINE_DETECTORS",
    "AutoencoderDetector",
    "Detector",
    "HalfSpaceTreesDetector",
    "LOFDetector",
    "OneClassSVMDetector",
    "ProfileDetector",
]
