"""bench.quality's table: every score with the direction in which it is better, NIQE among them."""

from bench.quality import markdown


def test_the_markdown_table_has_a_niqe_column_that_says_lower_is_better() -> None:
    rows = [
        {"dataset": "Set5", "method": "bicubic", "psnr": 28.4314, "ssim": 0.81127, "gradient_ratio": 0.5402,
         "niqe": 13.2685, "paper_psnr": 28.43},
        {"dataset": "Set5", "method": "srgan-real", "psnr": 27.0, "ssim": 0.8, "gradient_ratio": 1.0,
         "niqe": None, "paper_psnr": None},
    ]
    header, rule, bicubic, real = markdown(rows).splitlines()
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[2:6] == ["PSNR (dB, higher is better)", "SSIM (higher is better)",
                            "grad SR/HR (closer to 1.0 is better)", "NIQE (lower is better)"]
    assert rule.count("---") == len(columns)
    assert bicubic == "| Set5 | bicubic | 28.43 | 0.8113 | 0.540 | 13.27 | 28.43 |"
    assert real == "| Set5 | srgan-real | 27.00 | 0.8000 | 1.000 | — | — |"
