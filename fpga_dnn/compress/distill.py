"""Knowledge distillation: a float teacher trains a quantized student.

The student's loss is ``alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(teacher/T) ||
softmax(student/T))`` (Hinton et al.): the temperature ``T`` softens both distributions so the
student learns the teacher's ranking of the wrong classes too; ``T^2`` keeps the soft term's
gradients on the hard term's scale. Validation (early stopping) uses the hard loss only, so the
stopping rule is the same as for plain QAT.
"""

from __future__ import annotations

from pathlib import Path

from .. import kerasenv
from ..errors import ConfigError
from ..log import progress
from .chain import require_keras2
from .finetune import FineTune, fine_tune


def _distiller_class():
    keras = kerasenv.tf_keras()
    tf = kerasenv.tensorflow()

    class Distiller(keras.Model):
        """Wraps student and (frozen) teacher; Keras' own fit/evaluate/early stopping drive it."""

        def __init__(self, student, teacher, temperature: float, alpha: float):
            super().__init__()
            self.student, self.teacher = student, teacher
            self.teacher.trainable = False
            self.temperature, self.alpha = float(temperature), float(alpha)
            self.kl = keras.losses.KLDivergence()

        def call(self, x, training=False):
            return self.student(x, training=training)

        def train_step(self, data):
            x, y = data
            t = self.teacher(x, training=False)
            T = self.temperature
            with tf.GradientTape() as tape:
                s = self.student(x, training=True)
                hard = self.compiled_loss(y, s, regularization_losses=self.student.losses)
                soft = self.kl(tf.nn.softmax(t / T), tf.nn.softmax(s / T)) * (T * T)
                loss = self.alpha * hard + (1.0 - self.alpha) * soft
            variables = self.student.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            self.compiled_metrics.update_state(y, s)
            out = {m.name: m.result() for m in self.metrics}
            out["loss"] = loss
            return out

    return Distiller


def load_teacher(teacher):
    """A Keras 2 teacher model, from a model object or a saved file."""
    if teacher is None:
        raise ConfigError("distillation needs a teacher: a float Keras 2 model or its file (the flow's train "
                          "step saves the float baseline as train/float.h5)")
    if isinstance(teacher, (str, Path)):
        from ..modelio import load_model

        teacher, _ = load_model(teacher)
    require_keras2(teacher, "distillation (teacher)")
    return teacher


def distill(student, ds, teacher, *, temperature: float = 4.0, alpha: float = 0.1, ft: FineTune | None = None):
    """Train ``student`` (a QKeras model, in place) on ``ds`` from ``teacher``'s soft targets plus the
    hard labels. Returns ``(student, info)``."""
    require_keras2(student, "distillation (student)")
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha (weight of the hard-label loss) must be in [0, 1], got {alpha!r}")
    teacher = load_teacher(teacher)
    if tuple(teacher.output_shape[1:]) != tuple(student.output_shape[1:]):
        raise ConfigError(f"teacher output {teacher.output_shape[1:]} differs from the student's "
                          f"{student.output_shape[1:]}")
    from ..train import accuracy

    t_acc = accuracy(teacher, ds.x_test, ds.y_test)
    progress(f"compress: distilling from a teacher with test accuracy {t_acc:.4f} (T={temperature}, alpha={alpha})")
    ft = ft or FineTune()
    wrapper = _distiller_class()(student, teacher, temperature, alpha)
    hist = fine_tune(wrapper, ds, ft, "distill", structure_of=student)
    info = {"technique": "distill", "temperature": temperature, "alpha": alpha, "teacher_accuracy": t_acc, **hist}
    progress(f"compress: distilled student test accuracy {hist['accuracy']:.4f}")
    return student, info
