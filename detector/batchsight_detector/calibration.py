"""Thresholds and the confidence scale, from scores of normal images a model did not see.

Why a module of its own: every kind of model here turns held-out scores into a verdict the
same way.  Both fitted methods (fitting.py) set their threshold and score spread with these
functions, the model file records which rule set the threshold (model_file.py), and an
exported ONNX model calibrates its spread with `tail_scale` (onnx_model.py).  Keeping them
apart from the models also keeps those modules from importing each other.
"""

from __future__ import annotations

import math

import numpy as np

FALSE_ALARM_RATE = 0.02   # unsupervised threshold target, per image (unsupervised_threshold)

THRESHOLD_RULE = (f"robust Gumbel fit (median, quartiles) to held-out normal scores, "
                  f"false-alarm rate {FALSE_ALARM_RATE}")
SUPERVISED_THRESHOLD_RULE = "max F1, held-out normals vs anomalous examples"

# Quantiles of the standard Gumbel distribution: median and interquartile range.
_GUMBEL_MEDIAN = -math.log(math.log(2.0))
_GUMBEL_IQR = math.log(math.log(4.0)) - math.log(math.log(4.0 / 3.0))


def threshold(held_out: np.ndarray, anomaly_scores: np.ndarray) -> float:
    """The threshold fit() sets: best F1 against anomalous examples when there are any,
    else the unsupervised one from the held-out normal scores alone."""
    if len(anomaly_scores):
        return best_f1_threshold(held_out, anomaly_scores)
    return unsupervised_threshold(held_out)


def threshold_rule(n_anomalous: int) -> str:
    """How `threshold()` chose, in words, for the model file's metadata."""
    return SUPERVISED_THRESHOLD_RULE if n_anomalous else THRESHOLD_RULE


def tail_scale(held_out: np.ndarray) -> float:
    """Scale of the upper tail of normal scores: the mean excess over their median.

    For an exponential tail, P(score > median + t) = exp(-t / scale) / 2.  Floored at 5 %
    of the median so near-identical training images cannot make every verdict certain.
    """
    median = float(np.median(held_out))
    excess = held_out[held_out > median] - median
    return max(float(excess.mean()) if excess.size else 0.0, 0.05 * median, 1e-6)


def gumbel_fit(held_out: np.ndarray) -> tuple[float, float]:
    """(location, scale) of a Gumbel distribution through the scores' median and quartiles.

    A score is the maximum over many patch distances, and maxima follow a Gumbel law
    (extreme-value theory), whose upper tail is exponential with this scale.  Fitted on
    quantiles rather than moments so one odd image among a few dozen (a defect in the
    training set, an unusual good part) moves it little: on the casting set one held-out
    score of 55 against a median of 44 raised the moment estimate by a third.  The scale
    is floored at 2 % of the median so near-identical training images cannot make every
    verdict certain.
    """
    median = float(np.median(held_out))
    q1, q3 = np.percentile(held_out, [25, 75])
    scale = max(float(q3 - q1) / _GUMBEL_IQR, 0.02 * abs(median), 1e-6)
    return median - scale * _GUMBEL_MEDIAN, scale


def unsupervised_threshold(held_out: np.ndarray,
                           false_alarm_rate: float = FALSE_ALARM_RATE) -> float:
    """Threshold from held-out normal scores alone: the Gumbel fit's 1 - rate quantile.

    Replaces "median + mean excess x ln(0.5 / 0.002)", which sat above most defects
    (recall 0.20 on the circuit boards, 0.03 on the castings): the mean excess of a few
    dozen scores is dominated by the largest one, and a 0.2 % rate asks the tail for
    more than a few dozen scores can tell.  The rate, 2 %, was chosen on the training
    split (held-out normals against train/anomaly), not on the test split.
    """
    location, scale = gumbel_fit(held_out)
    return location - scale * math.log(-math.log(1.0 - false_alarm_rate))


def best_f1_threshold(normal_scores: np.ndarray, anomaly_scores: np.ndarray) -> float:
    """Threshold (score > threshold = anomalous) maximising F1; ties go to the widest gap.

    Candidates are midpoints between neighbouring scores, so the threshold sits in the
    middle of a gap rather than on top of an example.
    """
    scores = np.concatenate([normal_scores, anomaly_scores])
    is_anomaly = np.repeat([False, True], [normal_scores.size, anomaly_scores.size])
    order = np.argsort(scores, kind="stable")
    scores, is_anomaly = scores[order], is_anomaly[order]
    # Candidate i flags sorted positions i.. as anomalous.
    candidates = np.concatenate([[scores[0] - 1.0], (scores[:-1] + scores[1:]) / 2])
    gaps = np.concatenate([[0.0], np.diff(scores)])
    true_pos = np.cumsum(is_anomaly[::-1])[::-1]
    flagged = np.arange(scores.size, 0, -1)
    f1 = 2 * true_pos / (flagged + anomaly_scores.size)
    return float(candidates[np.lexsort((gaps, f1))[-1]])
