"""The post's planned and real steps and learning rates (helpers.schedule), against arithmetic done by hand."""
import math

import pytest
import torch
from transformers import get_cosine_schedule_with_warmup

from helpers import schedule


def test_dolly_figures_by_hand():
    # 15,011 rows: ceil(15011 / 2) = 7,506 micro-batches planned, // 2 = 3,753 steps, warmup ceil(375.3) = 376.
    # 7,167 blocks: ceil(7167 / 2) = 3,584 micro-batches, // 2 = 1,792 real steps.
    p = schedule.plan(15011, 7167)
    assert (p["post planned"], p["post warmup"], p["post real"]) == (3753, 376, 1792)
    assert (p["today planned"], p["today warmup"]) == (1792, 180)
    assert len(p["post lr"]) == 1792 and len(p["today lr"]) == 1792
    # The last real step runs at the LR of 1,791 scheduler steps: 0.5 (1 + cos(pi (1791 - 376) / (3753 - 376))).
    by_hand = 0.5 * (1 + math.cos(math.pi * 1415 / 3377))
    assert p["post final lr share"] == pytest.approx(by_hand) and 0.6 < by_hand < 0.7
    assert p["today lr"][-1] / 2e-4 < 0.001  # today's cosine ends near 0


def test_small_numbers_by_hand():
    # 75 rows -> ceil(75/2) = 38 micro-batches -> 19 planned steps, warmup 2; 21 blocks -> 11 micro-batches -> 5.
    p = schedule.plan(75, 21, peak=1.0)
    assert (p["post planned"], p["post warmup"], p["post real"]) == (19, 2, 5)
    assert p["post lr"][:3] == [0.0, 0.5, 1.0]
    assert (p["today planned"], p["today warmup"]) == (6, 1)  # ceil(11 micro-batches / 2) = 6, warmup ceil(0.6)


@pytest.mark.parametrize(("planned", "warmup"), [(3753, 376), (19, 2), (6, 1)])
def test_cosine_lr_is_transformers_schedule(planned, warmup):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    sched = get_cosine_schedule_with_warmup(opt, warmup, planned)
    for step in range(planned):
        assert schedule.cosine_lr(step, planned, warmup, 2e-4) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12)
        opt.step()
        sched.step()



def lrs_of_each_step(planned, warmup, steps, peak):
    """The LR each of the first `steps` optimizer steps runs at, from transformers' own scheduler: step k (from 1)
    runs at the LR set before the k-th scheduler step, since the Trainer steps the scheduler after the optimizer."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    sched = get_cosine_schedule_with_warmup(opt, warmup, planned)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize(("rows", "blocks"), [(75, 21), (40, 40), (15011, 7167)])
def test_every_steps_lr_is_the_one_the_trainer_used_then(rows, blocks):
    p = schedule.plan(rows, blocks, peak=2e-4)
    post = lrs_of_each_step(p["post planned"], p["post warmup"], p["post real"], 2e-4)
    today = lrs_of_each_step(p["today planned"], p["today warmup"], p["today planned"], 2e-4)
    assert p["post lr"] == pytest.approx(post, abs=1e-15) and p["today lr"] == pytest.approx(today, abs=1e-15)
    assert p["post lr"][0] == p["today lr"][0] == 0.0  # the first step runs before any warmup
    assert p["today lr"][-1] > 0  # the last step runs one scheduler step before the cosine's 0


def test_the_post_never_runs_past_its_planned_steps():
    # Fewer rows than blocks (long texts): 10 rows plan ceil(10 / 2) // 2 = 2 steps; 40 blocks could fill 10.
    p = schedule.plan(10, 40)
    assert (p["post planned"], p["post real"], len(p["post lr"])) == (2, 2, 2)
    assert p["today planned"] == 10

def test_post_blocks_adds_eos_and_drops_the_partial_block():
    assert schedule.post_blocks([10, 10, 10], block_tokens=11) == 3  # 33 tokens with <eos>
    assert schedule.post_blocks([10, 10, 10], block_tokens=12) == 2  # 33 // 12, the last 9 dropped


@pytest.mark.parametrize(("args", "error"), [
    ((0, 5), ValueError), ((10, True), TypeError), ((10, 5, 2, 2, 1.5), ValueError), ((10.0, 5), TypeError)])
def test_bad_input_is_named(args, error):
    with pytest.raises(error):
        schedule.plan(*args)
