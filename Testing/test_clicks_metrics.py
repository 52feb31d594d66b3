import numpy as np

from SliceAndConquerLib.clicks import Click, disk_maps, next_click
from SliceAndConquerLib.metrics import dice, iou


def test_disk_maps_radius_and_channels():
    maps = disk_maps([Click(10, 10, True), Click(30, 5, False)], (40, 40), radius=5)
    assert maps.shape == (2, 40, 40) and maps.dtype == np.float32
    assert maps[0, 10, 15] == 1 and maps[0, 10, 16] == 0 and maps[0, 30, 5] == 0
    assert maps[1, 30, 5] == 1 and maps[1, 10, 10] == 0
    assert maps[0].sum() == sum(1 for r in range(40) for c in range(40) if (r - 10) ** 2 + (c - 10) ** 2 <= 25)


def test_next_click_is_interior_positive_on_a_miss():
    truth = np.zeros((30, 30), bool)
    truth[5:20, 8:25] = True
    click = next_click(np.zeros_like(truth), truth)
    assert click.positive and truth[click.row, click.col]
    assert 11 <= click.row <= 13 and 15 <= click.col <= 17  # centre of the 15x17 box


def test_next_click_negative_on_false_alarm_in_largest_region():
    truth = np.zeros((30, 30), bool)
    truth[10:20, 10:20] = True
    prediction = truth.copy()
    prediction[0:8, 0:30] = True   # large false alarm
    prediction[12, 12] = False     # tiny miss
    click = next_click(prediction, truth)
    assert not click.positive and prediction[click.row, click.col] and not truth[click.row, click.col]
    assert next_click(truth, truth) is None


def test_dice_and_iou():
    a = np.zeros((4, 4), bool)
    b = a.copy()
    a[:2] = True
    b[1:3] = True
    assert dice(a, b) == 0.5 and iou(a, b) == 4 / 12
    assert dice(a, a) == 1.0 and dice(np.zeros(3), np.zeros(3)) == 1.0
