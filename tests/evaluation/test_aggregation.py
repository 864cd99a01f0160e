"""Video-level aggregation of multi-view predictions, on hand-made inputs."""
from __future__ import annotations

import os

import pytest
import torch

from softpool_video.evaluation.aggregation import (
    ViewBuffer,
    ViewScores,
    class_probabilities,
    combine_across_ranks,
    combine_views,
    finalize,
    merge_partials,
    owned_views,
    reduce_views,
    video_probabilities,
)

C = 3


def views(rows: list[tuple[int, int, int, list[float], int]]) -> ViewScores:
    """rows of (video, clip, crop, logits, label)."""

    def col(i: int) -> torch.Tensor:
        return torch.tensor([r[i] for r in rows], dtype=torch.long)

    return ViewScores(col(0), col(1), col(2), torch.tensor([r[3] for r in rows], dtype=torch.float32), col(4))


# video 7: two views that disagree; video 3: one view; video 5: one view given twice
HAND = views([
    (7, 0, 0, [4.0, 0.0, 0.0], 1),
    (7, 1, 0, [0.0, 1.0, 0.0], 1),
    (3, 0, 0, [0.0, 0.0, 2.0], 2),
    (5, 0, 0, [0.0, 3.0, 0.0], 0),
    (5, 0, 0, [0.0, 3.0, 0.0], 0),
])


def test_mean_softmax_by_hand():
    out = combine_views(HAND, "mean_softmax")
    assert out.video_index.tolist() == [3, 5, 7]
    assert out.num_views.tolist() == [1, 1, 2]  # the repeated view of video 5 counts once
    assert out.label.tolist() == [2, 0, 1]
    p7 = (torch.tensor([4.0, 0, 0]).softmax(0) + torch.tensor([0.0, 1, 0]).softmax(0)) / 2
    torch.testing.assert_close(out.score[2], p7)
    torch.testing.assert_close(out.score[0], torch.tensor([0.0, 0, 2]).softmax(0))
    assert out.score[2].argmax() == 0


def test_mean_logits_and_max_differ_from_mean_softmax():
    logits = combine_views(HAND, "mean_logits")
    torch.testing.assert_close(logits.score[2], torch.tensor([2.0, 0.5, 0.0]))
    peak = combine_views(HAND, "max")
    expect = torch.maximum(torch.tensor([4.0, 0, 0]).softmax(0), torch.tensor([0.0, 1, 0]).softmax(0))
    torch.testing.assert_close(peak.score[2], expect)


def test_views_of_one_video_with_different_labels_are_rejected():
    bad = views([(1, 0, 0, [1.0, 0, 0], 0), (1, 1, 0, [1.0, 0, 0], 2)])
    with pytest.raises(ValueError, match="video_index 1"):
        combine_views(bad)


def test_unknown_method_names_the_option():
    with pytest.raises(ValueError, match=r"aggregation.*'median'"):
        combine_views(HAND, "median")


def test_no_views_is_an_error():
    with pytest.raises(ValueError, match="no views"):
        combine_views(ViewScores.cat([], C))


def _random_views(n_videos: int, clips: int, crops: int, seed: int) -> ViewScores:
    g = torch.Generator().manual_seed(seed)
    idx = torch.arange(n_videos).repeat_interleave(clips * crops)
    clip = torch.arange(clips).repeat_interleave(crops).repeat(n_videos)
    crop = torch.arange(crops).repeat(n_videos * clips)
    labels = torch.randint(0, C, (n_videos,), generator=g)[idx]
    return ViewScores(idx, clip, crop, torch.randn(len(idx), C, generator=g), labels)


@pytest.mark.parametrize("method", ["mean_softmax", "mean_logits", "max"])
def test_simulated_ranks_match_single_process(method):
    """Views split over 3 ranks the way a padding sampler would: interleaved, a video's views on
    several ranks, and the first views repeated at the end to even out the ranks."""
    everything = _random_views(n_videos=5, clips=3, crops=2, seed=1)
    n, world = len(everything), 3
    order = torch.cat([torch.arange(n), torch.arange(4)])  # 30 views + 4 repeats, dealt round-robin
    per_rank = [everything.select(order[r::world]) for r in range(world)]
    # video 0's views really are spread over all ranks, and some views exist twice
    assert all((v.video_index == 0).any() for v in per_rank)
    assert sum(len(v) for v in per_rank) > n

    keys = [v.keys() for v in per_rank]
    partials = [reduce_views(v.select(owned_views(keys, r)), method) for r, v in enumerate(per_rank)]
    merged = finalize(merge_partials(partials, method), method)
    single = combine_views(everything, method)
    assert merged.video_index.tolist() == list(range(5))
    assert merged.num_views.tolist() == [6] * 5  # every view once, no matter how often it was sent
    torch.testing.assert_close(merged.score, single.score)
    assert merged.label.tolist() == single.label.tolist()


def test_combine_across_ranks_with_a_fake_gather():
    """combine_across_ranks runs the same protocol; a gather that returns every rank's object
    in order lets one process play each rank in turn."""
    everything = _random_views(n_videos=4, clips=2, crops=1, seed=2)
    per_rank = [everything.select(torch.arange(len(everything)) % 2 == r) for r in range(2)]
    calls = {"n": 0}

    def gather_for(rank: int):
        def gather(obj):
            calls["n"] += 1
            if isinstance(obj, torch.Tensor):  # first round: keys
                return [v.keys() for v in per_rank]
            return [reduce_views(v.select(owned_views([p.keys() for p in per_rank], r))) for r, v in
                    enumerate(per_rank)]
        return gather

    results = [combine_across_ranks(v, "mean_softmax", gather=gather_for(r), rank=r) for r, v in enumerate(per_rank)]
    torch.testing.assert_close(results[0].score, combine_views(everything).score)
    torch.testing.assert_close(results[1].score, results[0].score)
    assert calls["n"] == 4


def test_buffer_collects_batches_on_cpu():
    buffer = ViewBuffer(C)
    buffer.add(torch.tensor([0, 0]), torch.tensor([0, 1]), torch.tensor([0, 0]), torch.ones(2, C), torch.tensor([1, 1]))
    buffer.add(torch.tensor([1]), torch.tensor([0]), torch.tensor([0]), torch.zeros(1, C), torch.tensor([2]))
    got = buffer.collect()
    assert got.video_index.tolist() == [0, 0, 1] and got.logits.shape == (3, C)
    buffer.reset()
    assert len(buffer.collect()) == 0


def _worker(rank: int, world: int, port: int, shards: list[ViewScores], out_dir: str) -> None:
    # forked from a process whose OpenMP pool may be running: stay on one thread
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = combine_across_ranks(shards[rank], "mean_softmax")
        torch.save((result.video_index, result.score, result.num_views), os.path.join(out_dir, f"{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


def test_real_process_group_two_ranks(tmp_path, two_gloo_ranks):
    """Two gloo ranks: rank 1 also holds rank 0's first view (a padding repeat), and video 1
    has views on both ranks."""
    everything = _random_views(n_videos=3, clips=2, crops=2, seed=3)
    shards = [everything.select(torch.arange(0, 6)), everything.select(torch.tensor([6, 7, 8, 9, 10, 11, 0]))]
    two_gloo_ranks(_worker, shards, str(tmp_path))
    expected = combine_views(everything)
    for rank in (0, 1):
        video_index, score, num_views = torch.load(tmp_path / f"{rank}.pt")
        assert video_index.tolist() == [0, 1, 2]
        assert num_views.tolist() == [4, 4, 4]
        torch.testing.assert_close(score, expected.score)


@pytest.mark.parametrize("method", ["mean_softmax", "mean_logits", "max"])
def test_one_video_probabilities_follow_the_batch_rule(method):
    """`video_probabilities` (predict VIDEO...) is `combine_views` + `class_probabilities` on
    one video, except that max is renormalised to sum to one."""
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.5], [1.0, 1.0, 1.0]])
    one = views([(0, clip, 0, row.tolist(), 0) for clip, row in enumerate(logits)])
    batch = class_probabilities(combine_views(one, method), method)[0]
    single = video_probabilities(logits, method)
    assert single.sum().item() == pytest.approx(1.0, abs=1e-6)
    if method == "max":
        assert batch.sum().item() > 1.0  # each class's best view: not a distribution
        torch.testing.assert_close(single, batch / batch.sum())
    else:
        torch.testing.assert_close(single, batch)
    with pytest.raises(ValueError, match=r"aggregation.*'vote'"):
        video_probabilities(logits, "vote")
