"""The MIMO model: configuration, modeling, processor, presets."""

from transformers import AutoConfig

from mimo.model.configuration_mimo import MimoConfig
from mimo.model.modeling_mimo import MimoForConditionalGeneration, MimoGenerateOutput, MimoOutput
from mimo.model.presets import paper_config, preset_config, tiny_config
from mimo.model.processing_mimo import MimoProcessor, ProcessorSettings

# So AutoConfig / AutoTokenizer understand a saved MIMO directory's config.json.
AutoConfig.register(MimoConfig.model_type, MimoConfig, exist_ok=True)

__all__ = [
    "MimoConfig",
    "MimoForConditionalGeneration",
    "MimoGenerateOutput",
    "MimoOutput",
    "MimoProcessor",
    "ProcessorSettings",
    "paper_config",
    "preset_config",
    "tiny_config",
]
