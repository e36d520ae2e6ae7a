"""Per-device decisions (AMP, loss scaling, sink mode), checked for all three targets on CPU."""
import pytest

from mindcv_res2net.utils.device import TrainingPlan, normalize_device_target, plan_training


def test_cpu_plan_falls_back_with_messages():
    plan = plan_training("CPU", amp_level="O3", loss_scale=1024.0, dynamic_loss_scale=True, dataset_sink_mode=True)
    assert (plan.amp_level, plan.loss_scale, plan.dynamic_loss_scale, plan.dataset_sink_mode) == ("O0", 1024.0,
                                                                                                   False, False)
    assert len(plan.notes) == 3 and "--amp_level O3 is not supported on CPU" in plan.notes[0]
    assert "fixed --loss_scale 1024" in plan.notes[1] and "--dataset_sink_mode has no effect" in plan.notes[2]
    assert plan_training("cpu").notes == ()


@pytest.mark.parametrize("target", ["GPU", "Ascend"])
def test_accelerator_plans_keep_every_request(target):
    plan = plan_training(target, amp_level="O2", loss_scale=1024.0, dynamic_loss_scale=True, dataset_sink_mode=True)
    assert plan == TrainingPlan(amp_level="O2", loss_scale=1024.0, dynamic_loss_scale=True, dataset_sink_mode=True,
                                notes=())
    assert plan_training(target, amp_level="O3", loss_scale=128.0).dynamic_loss_scale is False


def test_bad_requests():
    with pytest.raises(ValueError, match="--amp_level must be O0, O1, O2 or O3"):
        plan_training("GPU", amp_level="O4")
    with pytest.raises(ValueError, match="--loss_scale must be positive"):
        plan_training("Ascend", loss_scale=0)
    with pytest.raises(ValueError, match="--device_target must be one of CPU, GPU, Ascend, got 'TPU'"):
        normalize_device_target("TPU")
