"""Evaluation: the metrics of the papers and the protocol that computes them on a dataset.

* :mod:`~fomm.evaluation.metrics`: the metric functions on arrays (L1, AKD/MKR, AED, keypoint
  regression error, jitter, keypoint acceleration, flow EPE) and the detector/embedding protocols
  they take.
* :mod:`~fomm.evaluation.fid`: FID with a feature network the user supplies (TorchScript;
  ``from fomm.evaluation.fid import fid``).
* :mod:`~fomm.evaluation.protocol`: the reconstruction protocol on a dataset's test split
  (:func:`evaluate_dataset`).
* :mod:`~fomm.evaluation.cross_identity`: the task itself, one figure animated with another's
  motion, against the exact ground truth of the synthetic cross pairs
  (:func:`evaluate_cross_identity`).
* :mod:`~fomm.evaluation.results`: the results table, its CSV/JSON files, the reconstruction videos.
* :mod:`~fomm.evaluation.landmarks`: a small landmark detector trained on synthetic ground truth.

    from fomm.evaluation import ColorHistogramEmbedding, evaluate_dataset
    result = evaluate_dataset(model, "data/sprites-64", embedding=ColorHistogramEmbedding())
    print(result.table())
"""

# The function fid stays in its module (fomm.evaluation.fid.fid): exported here, its name would
# hide the module.
from .cross_identity import Animation, ModelAnimation, PairMetrics, evaluate_cross_identity
from .fid import FeatureNetwork, FeatureStatistics, frechet_distance, load_feature_network
from .landmarks import (
    MAX_DETECTOR_TEST_ERROR,
    LandmarkConfig,
    LandmarkData,
    LandmarkNet,
    LandmarkTrainingResult,
    TrainedLandmarkDetector,
    detector_test_error,
    load_landmark_data,
    load_landmark_detector,
    save_landmark_detector,
    train_landmark_detector,
)
from .metrics import (
    ColorHistogramEmbedding,
    Detections,
    EmbeddingNetwork,
    KeypointRegression,
    LandmarkComparison,
    LandmarkDetector,
    acceleration_norms,
    as_detections,
    compare_landmarks,
    embedding_distances,
    fit_keypoint_regression,
    flow_end_point_error,
    keypoint_acceleration,
    keypoint_error,
    l1_error,
    landmark_error,
    point_distances,
    resize_flow,
    smooth_tracks,
    temporal_jitter,
    velocity_errors,
)
from .protocol import (
    DatasetSplit,
    OnVideo,
    Reconstruction,
    dataset_split,
    detect_keypoints,
    evaluate_dataset,
    fit_regression_on_train_split,
    reconstruct_video,
)
from .results import RECONSTRUCTION_FORMATS, EvaluationResult, Metric, ReconstructionWriter, VideoMetrics

__all__ = [
    "MAX_DETECTOR_TEST_ERROR",
    "RECONSTRUCTION_FORMATS",
    "Animation",
    "ColorHistogramEmbedding",
    "DatasetSplit",
    "Detections",
    "EmbeddingNetwork",
    "EvaluationResult",
    "FeatureNetwork",
    "FeatureStatistics",
    "KeypointRegression",
    "LandmarkComparison",
    "LandmarkConfig",
    "LandmarkData",
    "LandmarkDetector",
    "LandmarkNet",
    "LandmarkTrainingResult",
    "Metric",
    "ModelAnimation",
    "OnVideo",
    "PairMetrics",
    "Reconstruction",
    "ReconstructionWriter",
    "TrainedLandmarkDetector",
    "VideoMetrics",
    "acceleration_norms",
    "as_detections",
    "compare_landmarks",
    "dataset_split",
    "detect_keypoints",
    "detector_test_error",
    "embedding_distances",
    "evaluate_cross_identity",
    "evaluate_dataset",
    "fit_keypoint_regression",
    "fit_regression_on_train_split",
    "flow_end_point_error",
    "frechet_distance",
    "keypoint_acceleration",
    "keypoint_error",
    "l1_error",
    "landmark_error",
    "load_feature_network",
    "load_landmark_data",
    "load_landmark_detector",
    "point_distances",
    "reconstruct_video",
    "resize_flow",
    "save_landmark_detector",
    "smooth_tracks",
    "temporal_jitter",
    "train_landmark_detector",
    "velocity_errors",
]
