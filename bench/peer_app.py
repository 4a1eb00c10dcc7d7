"""The peer `bench/peer.py` measures against: a plain LitServe app serving the same generator on whole
images, as a user would most likely write it instead of this service.

It runs in its own environment, not this project's (LitServe is not a dependency):

    python3 -m venv /root/peer-venv
    /root/peer-venv/bin/pip install torch==2.13.0 litserve pillow numpy safetensors python-multipart
    PYTHONPATH=. /root/peer-venv/bin/python -m bench.peer_app --port 8001 \
        --weights model/weights/srgan_x4.safetensors

POST /upscale with a multipart field `image` (the service's own request, so one load generator drives
both) returns the x4 PNG at the service's zlib level. One image per model call (max_batch_size 1), the
network as loaded (BatchNorm not folded, float32, torch's default threads), the image at its own size
with the network's zero padding at its borders, LitServe's default worker and queue, `--timeout`.
"""

import argparse
import io

import litserve as ls
import numpy as np
import torch
from fastapi import Request, Response
from PIL import Image

from model.weights import load_generator

PNG_COMPRESS_LEVEL = 1  # the service's level: the comparison is of serving, not of zlib settings


class UpscaleAPI(ls.LitAPI):
    def __init__(self, weights: str) -> None:
        super().__init__(max_batch_size=1, api_path="/upscale")
        self.weights = weights

    def setup(self, device: str) -> None:
        self.model, _ = load_generator(self.weights)
        self.model.eval().to(device)

    # LitServe builds the endpoint from this annotation (so no postponed annotations in this module): a
    # plain Request, whose parsed form it hands here.
    def decode_request(self, request: Request) -> np.ndarray:
        return np.array(Image.open(request["image"].file).convert("RGB"))

    def predict(self, image: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255)
            y = self.model(x).clamp(0, 1).mul(255).round().to(torch.uint8)
        return y[0].permute(1, 2, 0).numpy()

    def encode_response(self, output: np.ndarray) -> Response:
        buffer = io.BytesIO()
        Image.fromarray(output).save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
        return Response(content=buffer.getvalue(), media_type="image/png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--timeout", type=float, default=30.0, help="request timeout (LitServe's default)")
    args = parser.parse_args()
    server = ls.LitServer(UpscaleAPI(args.weights), accelerator="cpu", timeout=args.timeout)
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False)


if __name__ == "__main__":
    main()
