"""CLIP features: preprocessing, the hidden_states[-2] tokens of both back-ends, the resumable file."""

import json

import numpy as np
import pytest
import torch

from otnsd.features import ClipVisionEncoder, extract_features, preprocess, read_features

RNG = np.random.default_rng(0)
PICS = RNG.integers(0, 256, size=(5, 240, 300, 3), dtype=np.uint8)


def test_preprocess_matches_torchvision_clip_transform():
    from PIL import Image
    from torchvision import transforms as T

    ref = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                     T.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])
    expected = torch.stack([ref(Image.fromarray(a)) for a in PICS[:2]])
    got = preprocess(PICS[:2])
    assert got.shape == (2, 3, 224, 224)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(PICS[0])


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                           image_size=224, patch_size=14)
    folder = tmp_path_factory.mktemp("clip-hf")
    CLIPVisionModel(cfg).save_pretrained(folder)
    return folder


def test_transformers_tokens_are_the_second_to_last_block_without_cls(hf_folder):
    from transformers import CLIPVisionModel

    enc = ClipVisionEncoder.from_transformers(hf_folder, device="cpu")
    got = enc(PICS[:2])
    assert got.shape == (2, 256, 32)
    m = CLIPVisionModel.from_pretrained(hf_folder).eval()
    vm = getattr(m, "vision_model", m)  # transformers < 5 nests the tower one level deeper
    with torch.no_grad():  # by hand: embeddings, pre-norm, all blocks but the last, drop CLS
        x = vm.pre_layrnorm(vm.embeddings(preprocess(PICS[:2])))
        for layer in vm.encoder.layers[:-1]:
            x = layer(x, attention_mask=None, causal_attention_mask=None)
            x = x[0] if isinstance(x, tuple) else x
    np.testing.assert_allclose(got, x[:, 1:].numpy(), atol=1e-5)
    with pytest.raises(FileNotFoundError, match="config.json missing"):
        ClipVisionEncoder.from_transformers(hf_folder / "nope")


def test_open_clip_tokens_are_the_second_to_last_block_without_cls(tmp_path):
    import open_clip

    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 224, "layers": 3, "width": 32, "head_width": 16, "patch_size": 14},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "otnsd-tiny-vit.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "otnsd-tiny-vit.json")
    model = open_clip.create_model("otnsd-tiny-vit", pretrained=None).eval()
    torch.save(model.state_dict(), tmp_path / "tiny.pt")
    enc = ClipVisionEncoder.from_open_clip("otnsd-tiny-vit", tmp_path / "tiny.pt", device="cpu")
    got = enc(PICS[:2])
    assert got.shape == (2, 256, 32)
    v = model.visual
    with torch.no_grad():
        x = v.conv1(preprocess(PICS[:2])).flatten(2).transpose(1, 2)
        x = torch.cat([v.class_embedding.expand(len(x), 1, -1), x], 1) + v.positional_embedding
        x = v.ln_pre(x)
        batch_first = getattr(v.transformer, "batch_first", False)
        x = x if batch_first else x.transpose(0, 1)
        for block in v.transformer.resblocks[:-1]:
            x = block(x)
        x = x if batch_first else x.transpose(0, 1)
    np.testing.assert_allclose(got, x[:, 1:].numpy(), atol=1e-5)
    with pytest.raises(FileNotFoundError, match="no CLIP weights"):
        ClipVisionEncoder.from_open_clip("otnsd-tiny-vit", tmp_path / "missing.pt")


class FakeEncoder:
    identity = "fake-v1"

    def __init__(self, fail_after=None):
        self.calls, self.fail_after = 0, fail_after

    def __call__(self, images):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt  # as if the user stopped the run
        return images.reshape(len(images), 2, -1)[:, :, :3].astype(np.float32) / 255


def images(ids):
    return PICS[np.asarray(ids) % len(PICS)]


def test_extraction_resumes_and_reads_back_in_any_order(tmp_path):
    ids = np.array([40, 7, 12, 3, 9])
    out = tmp_path / "feats.h5"
    with pytest.raises(KeyboardInterrupt):
        extract_features(FakeEncoder(fail_after=1), images, ids, out, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="unfinished"):
        read_features(out, ids)
    resumed = FakeEncoder()
    extract_features(resumed, images, ids, out, batch_size=2, progress=False)
    assert resumed.calls == 2  # the first batch was kept
    direct = FakeEncoder()(images(ids)).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(read_features(out, ids), direct)
    np.testing.assert_array_equal(read_features(out, [9, 40, 9]), direct[[4, 0, 4]])
    with pytest.raises(KeyError, match=r"\[5\]"):
        read_features(out, [5])
    other = FakeEncoder()
    other.identity = "another-checkpoint"
    with pytest.raises(ValueError, match="another CLIP checkpoint"):
        extract_features(other, images, ids, out, progress=False)
    with pytest.raises(FileNotFoundError, match="extract_features"):
        read_features(tmp_path / "none.h5", ids)
