from facecrop_ops.reporting.progress import Progress, format_duration


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_reports_count_rate_and_eta_at_most_every_interval():
    clock, lines = FakeClock(), []
    p = Progress(100, lines.append, every=5.0, clock=clock)
    clock.now += 2
    p.advance(10)  # too soon: no line
    clock.now += 3
    p.advance(10)
    assert lines == ["20/100 photos (20%), 4.0 photos/s, ETA 0:00:20"]


def test_progress_always_reports_the_end():
    clock, lines = FakeClock(), []
    p = Progress(3, lines.append, every=60, clock=clock)
    clock.now += 1.5
    p.advance(3)
    assert lines == ["3/3 photos (100%), 2.0 photos/s, done in 0:00:02"]


def test_format_duration():
    assert format_duration(3725.4) == "1:02:05"
    assert format_duration(-1) == "0:00:00"
