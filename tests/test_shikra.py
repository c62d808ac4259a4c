"""The Shikra adapter with a tiny random Llama built offline from a config."""

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402

from otnsd.caption import IM_END, IM_PATCH, IM_START, SHIKRA_PROMPT, ShikraCaptioner  # noqa: E402


def _tiny_tokenizer():
    words = sorted(set(SHIKRA_PROMPT.replace("<image>", "").replace(".", " .").replace(",", " ,")
                       .replace("?", " ?").replace(":", " :").replace("'", " ' ").split()))
    special = ["<unk>", "<s>", "</s>", IM_START, IM_PATCH, IM_END]
    vocab = {w: i for i, w in enumerate(special + words + ["a", "dog", "cat", "park"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split("<im_patch>", "isolated"),
                                                 pre_tokenizers.Split("<im_start>", "isolated"),
                                                 pre_tokenizers.Split("<im_end>", "isolated"),
                                                 pre_tokenizers.WhitespaceSplit()])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.add_special_tokens({"additional_special_tokens": [IM_START, IM_PATCH, IM_END]})
    return fast


@pytest.fixture(scope="module")
def shikra():
    torch.manual_seed(0)
    tok = _tiny_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                      eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    model = LlamaForCausalLM(cfg)
    projector = torch.nn.Linear(16, 32)
    return ShikraCaptioner(model, tok, projector, n_patches=256, max_new_tokens=5)


def test_patch_embeddings_replaced_exactly(shikra):
    brain = torch.randn(2, 256, 16)
    x = shikra.inputs_embeds(brain)
    ids = shikra.prompt_ids
    patch = ids == shikra.patch_id
    assert int(patch.sum()) == 256
    with torch.no_grad():
        torch.testing.assert_close(x[:, patch], shikra.mm_projector(brain))
        torch.testing.assert_close(x[0, ~patch], shikra.model.get_input_embeddings()(ids[~patch]))
    # the image tokens bracket the patches
    pos = torch.nonzero(patch)[:, 0]
    tok = shikra.tokenizer
    assert ids[pos[0] - 1] == tok.convert_tokens_to_ids(IM_START) and ids[pos[-1] + 1] == tok.convert_tokens_to_ids(IM_END)


def test_greedy_caption_runs_and_is_deterministic(shikra):
    brain = np.random.default_rng(0).normal(size=(3, 256, 16)).astype(np.float32)
    first = shikra(brain)
    assert len(first) == 3 and all(isinstance(c, str) for c in first)
    assert shikra(brain) == first


def test_wrong_inputs(shikra):
    with pytest.raises(ValueError, match="256"):
        shikra.inputs_embeds(torch.randn(1, 255, 16))
    with pytest.raises(FileNotFoundError, match="Shikra folder"):
        ShikraCaptioner.from_pretrained("/nonexistent/shikra-7b")


def test_from_pretrained_reads_a_local_folder(shikra, tmp_path):
    from safetensors.torch import save_file

    shikra.model.save_pretrained(tmp_path)
    shikra.tokenizer.save_pretrained(tmp_path)
    save_file({"model.mm_projector.weight": shikra.mm_projector.weight.detach().contiguous(),
               "model.mm_projector.bias": shikra.mm_projector.bias.detach().contiguous()},
              str(tmp_path / "mm_projector.safetensors"))
    loaded = ShikraCaptioner.from_pretrained(tmp_path, dtype=torch.float32, max_new_tokens=5)
    brain = np.random.default_rng(1).normal(size=(2, 256, 16)).astype(np.float32)
    assert loaded(brain) == shikra(brain)
    (tmp_path / "mm_projector.safetensors").unlink()
    with pytest.raises(ValueError, match="no mm_projector weights"):
        ShikraCaptioner.from_pretrained(tmp_path, dtype=torch.float32)
