"""Starting from a LLaVA checkpoint, and the components' own preprocessing (CLIP, SigLIP, SAM).

Small random ``LlavaForConditionalGeneration``, ``SiglipVisionModel`` and ``SamModel`` checkpoints
are saved with transformers (with their image-processor configs) and assembled; MIMO must give
the same image features and LM logits as the LLaVA model it came from, and normalise pixels as
each tower's own processor says.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    SamImageProcessor,
    SamModel,
    SiglipImageProcessor,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from mimo.model import MimoForConditionalGeneration, MimoProcessor, tiny_config

SMALL = {
    "aligner_num_queries": 4,
    "aligner_hidden_size": 32,
    "aligner_num_heads": 4,
    "aligner_num_layers": 1,
    "seg_hidden_size": 32,
}
TEXTS = ["Describe the image concisely.", "A CT slice of the abdomen with the liver and both kidneys."]
VISION = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64}
VISION_LAYERS = {"num_hidden_layers": 3, "num_attention_heads": 4}
TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "tie_word_embeddings": False,
}


@pytest.fixture(scope="module")
def tokenizer():
    return llava_tokenizer()


def llava_tokenizer() -> PreTrainedTokenizerFast:
    """A LLaVA-style tokenizer: ``<image>`` and ``<pad>`` but none of MIMO's other tokens."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["<unk>", "<s>", "</s>", "<image>", "<pad>"]
    trainer = trainers.BpeTrainer(
        vocab_size=120, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(TEXTS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


@pytest.fixture(scope="module")
def sam_dir(tmp_path_factory):
    return save_sam(tmp_path_factory.mktemp("sam"))


def save_sam(path):
    torch.manual_seed(1)
    SamModel(tiny_config().sam_config).save_pretrained(path)
    SamImageProcessor(size={"longest_edge": 128}, pad_size={"height": 128, "width": 128}).save_pretrained(
        path
    )
    return path


def save_llava(path, tokenizer, layer=-2, strategy="default"):
    torch.manual_seed(0)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**VISION, **VISION_LAYERS),
        # padded beyond the tokenizer, as llava-1.5-7b-hf's 32064 rows for 32002 tokens
        text_config=LlamaConfig(vocab_size=len(tokenizer) + 6, **TEXT),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=layer,
        vision_feature_select_strategy=strategy,
    )
    llava = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():  # non-zero biases, so a projector mapped without them would show
        for p in llava.model.multi_modal_projector.parameters():
            p.normal_(0.0, 0.1)
    llava.save_pretrained(path)
    tokenizer.save_pretrained(path)
    # saved as transformers 5 saves a LlavaProcessor: the image processor nested in processor_config.json
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8).save_pretrained(path)
    assert not (path / "preprocessor_config.json").exists()
    return llava


@pytest.mark.parametrize(("layer", "strategy"), [(-2, "default"), ([-3, -1], "full")])
def test_llava_start_gives_llavas_image_features_and_logits(tmp_path, tokenizer, sam_dir, layer, strategy):
    llava = save_llava(tmp_path / "llava", tokenizer, layer, strategy)
    model, tok = MimoForConditionalGeneration.from_components(llava=tmp_path / "llava", sam=sam_dir, **SMALL)
    model.eval()
    cfg = model.config
    assert (cfg.vision_feature_layer, cfg.vision_feature_select_strategy) == (layer, strategy)
    assert cfg.num_image_features == 16 + (strategy == "full")
    for name in ("prompt_encoder", "aligner", "seg_head"):
        assert all(not p.is_meta for p in getattr(model, name).parameters()), name

    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = model.projector(model.image_features(pixels))
        theirs = torch.stack(llava.get_image_features(pixel_values=pixels).pooler_output)
    assert ours.shape == theirs.shape == (2, cfg.num_image_features, TEXT["hidden_size"])
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)

    ids = torch.tensor([tok.encode("A CT slice of the abdomen.", add_special_tokens=False)])
    with torch.no_grad():
        ours = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        theirs = llava(input_ids=ids).logits
    n = len(tokenizer)  # LLaVA's rows beyond its tokenizer give way to MIMO's 4 new tokens
    assert ours.shape[-1] == len(tok) == n + 4
    torch.testing.assert_close(ours[..., :n], theirs[..., :n], rtol=1e-5, atol=1e-5)
    assert tok.convert_tokens_to_ids("<image>") == cfg.image_token_id == llava.config.image_token_id
    pairs = (
        (model.get_input_embeddings().weight, llava.get_input_embeddings().weight[:n]),
        (model.get_output_embeddings().weight, llava.get_output_embeddings().weight[:n]),
    )
    for ours_rows, their_rows in pairs:  # kept rows unchanged, new rows at their mean
        assert torch.equal(ours_rows[:n], their_rows)
        torch.testing.assert_close(ours_rows[n:], their_rows.mean(0, keepdim=True).expand(4, -1))

    processor = MimoProcessor.for_model(tok, cfg)
    assert processor.settings.vision_mean == tuple(CLIPImageProcessor().image_mean)
    assert (processor.settings.vision_resample, processor.settings.sam_resample) == ("bicubic", "bilinear")


def test_llava_start_refuses_overriding_what_its_projector_was_trained_for(tmp_path, tokenizer, sam_dir):
    save_llava(tmp_path / "llava", tokenizer, -2, "default")
    with pytest.raises(ValueError, match="vision_feature_layer.* LLaVA checkpoint's config"):
        MimoForConditionalGeneration.from_components(
            llava=tmp_path / "llava", sam=sam_dir, vision_feature_layer=-1
        )
    with pytest.raises(ValueError, match="llava: .* holds a 'sam' model"):
        MimoForConditionalGeneration.from_components(llava=sam_dir, sam=sam_dir)
    with pytest.raises(ValueError, match="not both"):
        MimoForConditionalGeneration.from_components(llava=tmp_path / "llava", llm=tmp_path, sam=sam_dir)


def _save_siglip_parts(tmp_path, tokenizer):
    torch.manual_seed(2)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), **TEXT)).save_pretrained(tmp_path / "llm")
    tokenizer.save_pretrained(tmp_path / "llm")
    SiglipVisionModel(SiglipVisionConfig(**VISION, **VISION_LAYERS)).save_pretrained(tmp_path / "siglip")
    siglip_processor = SiglipImageProcessor(size={"height": 32, "width": 32})
    siglip_processor.save_pretrained(tmp_path / "siglip")
    return siglip_processor


def test_siglip_tower_gets_siglips_own_preprocessing_saved_and_reloaded(tmp_path, tokenizer, sam_dir):
    siglip_processor = _save_siglip_parts(tmp_path, tokenizer)
    model, tok = MimoForConditionalGeneration.from_components(
        llm=tmp_path / "llm", vision=tmp_path / "siglip", sam=sam_dir, **SMALL
    )
    processor = MimoProcessor.for_model(tok, model.config)
    settings = processor.settings
    assert settings.vision_mean == settings.vision_std == (0.5, 0.5, 0.5)
    assert settings.sam_mean == (0.485, 0.456, 0.406) and settings.vision_resample == "bicubic"
    assert model.config.num_image_features == 16  # SigLIP has no CLS token to drop

    # a square image needs no padding: MIMO's pixels are SigLIP's own processor's, up to resampling
    rng = np.random.default_rng(0)
    image = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    ours = processor.prepare_image(image)["pixel_values"]
    theirs = torch.as_tensor(np.asarray(siglip_processor(Image.fromarray(image))["pixel_values"]))[0]
    clip_normalised = MimoProcessor.for_model(tok, tiny_config()).settings  # the old hard-coded CLIP values
    assert clip_normalised.vision_mean != settings.vision_mean
    right = float((ours - theirs).abs().mean())
    resized = (ours * 0.5) + 0.5
    as_clip = (resized - torch.tensor(clip_normalised.vision_mean)[:, None, None]) / torch.tensor(
        clip_normalised.vision_std
    )[:, None, None]
    wrong = float((as_clip - theirs).abs().mean())  # what a SigLIP tower was given before
    assert right < 0.03 and wrong > 5 * right, (right, wrong)

    with torch.no_grad():
        batch = processor.collate(
            [
                processor.process_sample(
                    image, [{"from": "human", "value": "<image>\nDescribe."}], [], {}, True
                )
            ]
        )
        batch.pop("image_size")
        assert torch.isfinite(model(**batch).logits).all()

    model.save_pretrained(tmp_path / "mimo")
    processor.save_pretrained(tmp_path / "mimo")
    reloaded = MimoProcessor.from_pretrained(tmp_path / "mimo")
    assert torch.equal(reloaded.prepare_image(image)["pixel_values"], ours)
    config = MimoForConditionalGeneration.config_class.from_pretrained(tmp_path / "mimo")
    assert MimoProcessor.for_model(tok, config).settings == settings


def test_a_processor_config_that_disagrees_with_the_tower_is_refused(tmp_path, tokenizer, sam_dir):
    _save_siglip_parts(tmp_path, tokenizer)
    SiglipImageProcessor(size={"height": 48, "width": 48}).save_pretrained(tmp_path / "siglip")
    with pytest.raises(ValueError, match="preprocessor_config.json: the vision processor makes 48px"):
        MimoForConditionalGeneration.from_components(
            llm=tmp_path / "llm", vision=tmp_path / "siglip", sam=sam_dir
        )
