"""Person matching: is a broker's listing the person a scan looks for, and how sure are we.

``Matcher(Target.from_query(query), threshold).score(listing)`` -> ``MatchResult``
(confidence in [0, 1], accepted, per-field evidence without personal values).
See scorer.py (Fellegi-Sunter weights), names.py, fields.py; evaluate.py is the
offline evaluator over the sandbox population.
"""

from crawler.matching.scorer import PROBABILITIES, Matcher, MatchResult, Target

__all__ = ["PROBABILITIES", "MatchResult", "Matcher", "Target"]
