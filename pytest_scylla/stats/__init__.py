"""Statistics for runs, sub-tests and tiers (DESIGN section 7).

Everything here is a pure function of its arguments: no I/O, no global random state. Bootstraps
and permutation tests take their seed as a parameter so a report regenerated from the same run
records is byte-identical. `core` holds the summaries and tests the reports use today; the
other modules hold the issue-12 statistics (exact rank tests, effect sizes with intervals,
cluster bootstrap, planning at the corrected alpha, pass^k, judge agreement).
"""

from pytest_scylla.stats.agreement import JudgeAgreement, krippendorff_alpha, score_ranges
from pytest_scylla.stats.clusters import cluster_bootstrap_mean
from pytest_scylla.stats.core import (
    ALPHA,
    MIN_RUNS_PER_GROUP,
    PASS_AT_K,
    TARGET_POWER,
    Magnitude,
    MannWhitneyResult,
    Statistic,
    SummaryStats,
    TierComparison,
    WilcoxonResult,
    bootstrap_ci,
    cliffs_delta,
    cliffs_magnitude,
    compare_groups,
    cost_of_pass,
    holm_correction,
    mann_whitney,
    mann_whitney_power,
    pass_at_k,
    runs_needed_for_power,
    summarize,
    too_few_runs,
    too_few_runs_note,
    wilcoxon_paired,
    wilson_interval,
)
from pytest_scylla.stats.effects import (
    cliffs_delta_interval,
    cliffs_delta_intervals,
    cost_of_pass_interval,
    hodges_lehmann,
    pass_rate_difference,
)
from pytest_scylla.stats.intervals import Interval, mean_interval
from pytest_scylla.stats.planning import (
    DetectableEffect,
    corrected_alpha,
    minimum_detectable_effect,
    minimum_detectable_pass_rate_difference,
    runs_needed_per_group,
)
from pytest_scylla.stats.rank_tests import (
    KruskalWallisResult,
    RankSumResult,
    SignedRankResult,
    kruskal_wallis,
    rank_sum_test,
    signed_rank_test,
)
from pytest_scylla.stats.reliability import ErrorSensitivity, error_sensitivity, pass_hat_k
from pytest_scylla.stats.tier_tests import TierTest, TierTests, compare_tiers, comparison_pairs

__all__ = [
    "ALPHA",
    "MIN_RUNS_PER_GROUP",
    "PASS_AT_K",
    "TARGET_POWER",
    "DetectableEffect",
    "ErrorSensitivity",
    "Interval",
    "JudgeAgreement",
    "KruskalWallisResult",
    "Magnitude",
    "MannWhitneyResult",
    "RankSumResult",
    "SignedRankResult",
    "Statistic",
    "SummaryStats",
    "TierComparison",
    "TierTest",
    "TierTests",
    "WilcoxonResult",
    "bootstrap_ci",
    "cliffs_delta",
    "cliffs_delta_interval",
    "cliffs_delta_intervals",
    "cliffs_magnitude",
    "cluster_bootstrap_mean",
    "compare_groups",
    "compare_tiers",
    "comparison_pairs",
    "corrected_alpha",
    "cost_of_pass",
    "cost_of_pass_interval",
    "error_sensitivity",
    "hodges_lehmann",
    "holm_correction",
    "krippendorff_alpha",
    "kruskal_wallis",
    "mann_whitney",
    "mann_whitney_power",
    "mean_interval",
    "minimum_detectable_effect",
    "minimum_detectable_pass_rate_difference",
    "pass_at_k",
    "pass_hat_k",
    "pass_rate_difference",
    "rank_sum_test",
    "runs_needed_for_power",
    "runs_needed_per_group",
    "score_ranges",
    "signed_rank_test",
    "summarize",
    "too_few_runs",
    "too_few_runs_note",
    "wilcoxon_paired",
    "wilson_interval",
]
