"""Knowledge distillation (keras.io's example, imports swapped for Lamina).

MNIST is replaced by the bundled 8x8 digits and the convnets are narrowed to match; the rest is
keras.io's Keras 3 script: a `Distiller` model subclass whose `compile` takes the two losses,
whose `compute_loss` mixes the student loss with the KL divergence to the teacher's softened
predictions, and whose `call` is the student's; then a student trained from scratch
(`keras.models.clone_model`) for comparison.

    LAMINA_EXAMPLES_SMALL=1 python examples/keras3/knowledge_distillation.py
"""

import os

import numpy as np

import lamina as keras
from lamina import layers, ops

SMALL = os.environ.get("LAMINA_EXAMPLES_SMALL") == "1"
keras.utils.set_random_seed(1337)


# ## Construct `Distiller()` class
class Distiller(keras.Model):
    def __init__(self, student, teacher):
        super().__init__()
        self.teacher = teacher
        self.student = student

    def compile(
        self,
        optimizer,
        metrics,
        student_loss_fn,
        distillation_loss_fn,
        alpha=0.1,
        temperature=3,
    ):
        """Configure the distiller.

        Args:
            optimizer: Keras optimizer for the student weights
            metrics: Keras metrics for evaluation
            student_loss_fn: Loss function of difference between student
                predictions and ground-truth
            distillation_loss_fn: Loss function of difference between soft
                student predictions and soft teacher predictions
            alpha: weight to student_loss_fn and 1-alpha to distillation_loss_fn
            temperature: Temperature for softening probability distributions.
                Larger temperature gives softer distributions.
        """
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = distillation_loss_fn
        self.alpha = alpha
        self.temperature = temperature

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, allow_empty=False):
        teacher_pred = self.teacher(x, training=False)
        student_loss = self.student_loss_fn(y, y_pred)

        distillation_loss = self.distillation_loss_fn(
            ops.softmax(teacher_pred / self.temperature, axis=1),
            ops.softmax(y_pred / self.temperature, axis=1),
        ) * (self.temperature**2)

        loss = self.alpha * student_loss + (1 - self.alpha) * distillation_loss
        return loss

    def call(self, x):
        return self.student(x)


# ## Create student and teacher models
teacher = keras.Sequential(
    [
        keras.Input(shape=(8, 8, 1)),
        layers.Conv2D(64, (3, 3), strides=(2, 2), padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
        layers.Conv2D(128, (3, 3), strides=(2, 2), padding="same"),
        layers.Flatten(),
        layers.Dense(10),
    ],
    name="teacher",
)

# Create the student
student = keras.Sequential(
    [
        keras.Input(shape=(8, 8, 1)),
        layers.Conv2D(16, (3, 3), strides=(2, 2), padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
        layers.Conv2D(32, (3, 3), strides=(2, 2), padding="same"),
        layers.Flatten(),
        layers.Dense(10),
    ],
    name="student",
)

# Clone student for later comparison
student_scratch = keras.models.clone_model(student)

# ## Prepare the dataset
(x_train, y_train), (x_test, y_test) = keras.datasets.digits.load_data()
x_train = x_train.astype("float32")
x_test = x_test.astype("float32")
if SMALL:
    x_train, y_train = x_train[:640], y_train[:640]

epochs = 10

# ## Train the teacher
teacher.compile(
    optimizer=keras.optimizers.Adam(),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=[keras.metrics.SparseCategoricalAccuracy()],
)

# Train and evaluate teacher on data.
teacher.fit(x_train, y_train, epochs=epochs, verbose=2)
teacher.evaluate(x_test, y_test, verbose=0)

# ## Distill teacher to student
distiller = Distiller(student=student, teacher=teacher)
distiller.compile(
    optimizer=keras.optimizers.Adam(),
    metrics=[keras.metrics.SparseCategoricalAccuracy()],
    student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    distillation_loss_fn=keras.losses.KLDivergence(),
    alpha=0.1,
    temperature=10,
)

# Distill teacher to student
distiller.fit(x_train, y_train, epochs=epochs, verbose=2)

# Evaluate student on test dataset
distilled = distiller.evaluate(x_test, y_test, return_dict=True, verbose=0)

# ## Train student from scratch for comparison
student_scratch.compile(
    optimizer=keras.optimizers.Adam(),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=[keras.metrics.SparseCategoricalAccuracy()],
)

# Train and evaluate student trained from scratch.
student_scratch.fit(x_train, y_train, epochs=epochs, verbose=2)
scratch = student_scratch.evaluate(x_test, y_test, return_dict=True, verbose=0)
print("student from scratch:", scratch)
print("distilled student:", distilled)
print("student predictions agree with the distiller:",
      bool(np.allclose(student.predict(x_test[:8], verbose=0), distiller.predict(x_test[:8], verbose=0))))
print(f"final sparse_categorical_accuracy: {distilled['sparse_categorical_accuracy']:.4f}")
