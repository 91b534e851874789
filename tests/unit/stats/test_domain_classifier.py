import numpy as np
import pytest
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import roc_auc_score

from driftline.stats import domain_auc

SEEDS = range(5)


def positive_texts(rng: np.random.Generator, k: int) -> list[str]:
    subject = ["the food", "this movie", "our trip", "the service", "my new phone", "the hotel"]
    adjective = ["great", "lovely", "amazing", "wonderful", "fantastic", "excellent", "superb"]
    ending = ["today", "so far", "honestly", "this week", "again", "as always", "tonight"]
    return [
        f"{rng.choice(subject)} was {rng.choice(adjective)} {rng.choice(ending)}" for _ in range(k)
    ]


def spam_texts(rng: np.random.Generator, k: int) -> list[str]:
    opener = ["WINNER!", "URGENT:", "Congratulations,", "FREE MSG:", "Final notice:"]
    prize = ["a £1000 cash prize", "a free holiday", "a new mobile", "2 free tickets"]
    action = ["text WIN to", "call now on", "reply YES to", "claim at"]
    return [
        f"{rng.choice(opener)} you have won {rng.choice(prize)}, {rng.choice(action)} "
        f"{rng.integers(10_000, 99_999)}"
        for _ in range(k)
    ]


def tfidf(reference: list[str], current: list[str]) -> tuple[sparse.csr_matrix, ...]:
    vectorizer = TfidfVectorizer().fit(reference + current)
    return vectorizer.transform(reference), vectorizer.transform(current)


def test_auc_is_near_half_and_not_drifted_on_same_distribution_vectors() -> None:
    results = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        results.append(
            domain_auc(rng.normal(size=(300, 20)), rng.normal(size=(400, 20)), seed=seed)
        )
    # Null sd of one AUC is ~0.033 here; 5 seeds. False alarm rate ~5% per seed.
    assert 0.45 <= np.mean([r.auc for r in results]) <= 0.55
    assert sum(r.drifted for r in results) <= 1
    assert {r.n_per_side for r in results} == {300}


def test_auc_is_high_and_drifted_on_shifted_vectors() -> None:
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        result = domain_auc(rng.normal(size=(300, 20)), rng.normal(0.6, 1.0, (300, 20)), seed=seed)
        # Population AUC of the optimal linear rule: Phi(0.6 * sqrt(20 / 2)) = 0.97.
        assert result.auc > 0.9
        assert result.drifted


def test_text_drift_from_reviews_to_sms_spam_is_detected() -> None:
    rng = np.random.default_rng(0)
    reference, current = tfidf(positive_texts(rng, 300), spam_texts(rng, 300))
    result = domain_auc(reference, current)
    assert result.auc > 0.9
    assert result.drifted


def test_texts_from_one_small_pool_drawn_with_replacement_give_auc_near_half() -> None:
    # 294 distinct sentences, so both sides repeat sentences and share many. With duplicates
    # removed per side but shared rows split across folds, the mean AUC here is 0.39.
    aucs = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        reference, current = tfidf(positive_texts(rng, 400), positive_texts(rng, 400))
        result = domain_auc(reference, current, seed=seed)
        assert result.n_duplicates > 0
        aucs.append(result.auc)
    assert 0.45 <= np.mean(aucs) <= 0.55


def test_duplicates_on_one_side_inflate_auc_unless_removed() -> None:
    kept, removed = [], []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        reference = rng.normal(size=(600, 50))
        # A current window that replays 200 events about 3 times each, same distribution.
        current = rng.normal(size=(200, 50))[rng.integers(0, 200, 600)]
        kept.append(domain_auc(reference, current, seed=seed, deduplicate=False))
        removed.append(domain_auc(reference, current, seed=seed))
    # Measured over 10 seeds: mean AUC 0.62 kept (all drifted), 0.51 removed.
    assert np.mean([r.auc for r in kept]) > 0.58
    assert all(r.drifted for r in kept)
    assert 0.45 <= np.mean([r.auc for r in removed]) <= 0.55
    assert sum(r.drifted for r in removed) <= 1
    assert all(r.n_per_side == 600 - r.n_duplicates for r in removed)


def test_auc_is_the_roc_auc_of_the_reported_out_of_fold_scores() -> None:
    rng = np.random.default_rng(3)
    result = domain_auc(rng.normal(size=(200, 5)), rng.normal(0.3, 1.0, (250, 5)))
    assert result.labels.tolist() == [0] * 200 + [1] * 200
    assert result.auc == roc_auc_score(result.labels, result.scores)


def test_duplicate_detection_ignores_sparse_storage_details() -> None:
    rows = sparse.csr_matrix(np.eye(12))
    # Row 0 again, with an explicit zero, int64 indices and unsorted entries.
    row0 = sparse.csr_matrix(
        (np.array([0.0, 1.0]), np.array([5, 0], dtype=np.int64), np.array([0, 2])), shape=(1, 12)
    )
    assert domain_auc(rows, sparse.vstack([rows, row0], format="csr")).n_duplicates == 1


def test_duplicate_detection_treats_negative_zero_and_float32_as_equal_values() -> None:
    rows = np.eye(12)
    row1 = np.array([[-0.0, 1.0] + [-0.0] * 10])
    current = np.vstack([rows, row1]).astype(np.float32)
    assert domain_auc(rows, current).n_duplicates == 1


def test_rejects_fewer_distinct_rows_than_folds() -> None:
    with pytest.raises(ValueError, match="at least 5 distinct rows"):
        domain_auc(np.ones((10, 3)), np.eye(3))
