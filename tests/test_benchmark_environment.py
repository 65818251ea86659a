"""The speed benchmarks time the published baseline only in the environment its users had."""
import pytest
import torch

from baselines.environment import describe_environment, environment_line
from scripts import benchmark, benchmark_detection, benchmark_end_to_end, benchmark_training
from utils.cli import UserError

REFUSAL = ('OMP_WAIT_POLICY=PASSIVE is set: it slows the published code far more than this one, whose users did '
           'not set it; unset it (env -u OMP_WAIT_POLICY ...) to time both as users run them')


@pytest.mark.parametrize('main, argv', [
    (benchmark.main, ['--models', 'sparnet', '--repeats', '1', '--released']),  # refused before downloading
    (benchmark_end_to_end.main, ['--faces', 'no_such_folder']),
    (benchmark_training.main, ['--models', 'sparnet', '--repeats', '1']),
    (benchmark_detection.main, ['--photos', 'no_such_folder', '--published']),
])
def test_benchmarks_of_the_published_code_refuse_omp_wait_policy_before_any_work(monkeypatch, main, argv):
    monkeypatch.setenv('OMP_WAIT_POLICY', 'PASSIVE')
    monkeypatch.setattr(torch, 'manual_seed', lambda *args: pytest.fail('work started'))
    with pytest.raises(UserError) as err:
        main(argv)
    assert str(err.value) == REFUSAL


def test_the_environment_line_names_the_thread_variables_set(monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '2')
    monkeypatch.delenv('MKL_NUM_THREADS', raising=False)
    env = describe_environment(torch.device('cpu'), 2)
    assert env['variables'] == {'OMP_NUM_THREADS': '2'}
    line = environment_line(env, (0.5, 0, 0), (1.25, 0, 0))
    assert line.startswith(f'environment: cpu, {torch.get_num_threads()} threads, torch ')
    assert line.endswith("variables {'OMP_NUM_THREADS': '2'}; load average (1 min) 0.50 at start, 1.25 at end")
