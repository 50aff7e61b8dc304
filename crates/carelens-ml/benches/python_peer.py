"""The Python peer of `cargo bench -p carelens-ml --bench throughput`: the same jobs with
PyTorch (CPU) and scikit-learn.

  python_peer.py image THREADS SECONDS    training and inference images/s (JSON)
  python_peer.py tabular WDBC_CSV REPEATS 10-fold CV fit+predict time and AUROC (JSON)

`image` builds the carelens residual CNN layer for layer (3x3 stem without bias, batch norm,
one basic block per stage with widths 16/32/64, stride 2 from the second stage, 1x1
projection shortcuts, global average pooling, one linear logit) on 1x28x28 inputs; a
training step is forward + BCE-with-logits + backward + AdamW(lr 3e-3, weight decay 1e-4)
on a batch of 64, inference the eval-mode forward pass under torch.inference_mode on
batches of 256.

`tabular` mirrors the Rust families: standardised logistic regression with L2 (C = 1/alpha,
alpha 1), Gaussian naive Bayes (var_smoothing 1e-9) and a random forest (100 trees, depth 8,
half the features), each under StratifiedKFold(10), scored by pooled out-of-fold AUROC.
"""
import json
import sys
import time


def rate(warmup, seconds, step):
    for _ in range(warmup):
        step()
    started = time.perf_counter()
    n = 0
    while n < 3 or time.perf_counter() - started < seconds:
        step()
        n += 1
    return n / (time.perf_counter() - started)


def image(threads, seconds):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(7)

    def conv3(i, o, stride):
        return nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False)

    class Block(nn.Module):
        def __init__(self, i, o, stride):
            super().__init__()
            self.conv1, self.norm1 = conv3(i, o, stride), nn.BatchNorm2d(o)
            self.conv2, self.norm2 = conv3(o, o, 1), nn.BatchNorm2d(o)
            self.shortcut = None
            if i != o or stride != 1:
                self.shortcut = nn.Sequential(nn.Conv2d(i, o, 1, stride=stride, bias=False), nn.BatchNorm2d(o))

        def forward(self, x):
            y = torch.relu(self.norm1(self.conv1(x)))
            y = self.norm2(self.conv2(y))
            return torch.relu(y + (self.shortcut(x) if self.shortcut is not None else x))

    class Net(nn.Module):
        def __init__(self, widths=(16, 32, 64)):
            super().__init__()
            self.stem, self.stem_norm = conv3(1, widths[0], 1), nn.BatchNorm2d(widths[0])
            blocks, prev = [], widths[0]
            for k, w in enumerate(widths):
                blocks.append(Block(prev, w, 1 if k == 0 else 2))
                prev = w
            self.blocks = nn.Sequential(*blocks)
            self.head = nn.Linear(prev, 1)

        def forward(self, x):
            x = self.blocks(torch.relu(self.stem_norm(self.stem(x))))
            return self.head(x.mean(dim=(2, 3)))

    net = Net()
    params = sum(p.numel() for p in net.parameters())
    optim = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()
    x = torch.rand(64, 1, 28, 28)
    y = (torch.arange(64) % 3 == 0).float().unsqueeze(1)
    net.train()

    def train_step():
        optim.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        optim.step()
        loss.item()

    train = rate(3, seconds, train_step)
    net.eval()
    xi = torch.rand(256, 1, 28, 28)

    def infer_step():
        with torch.inference_mode():
            net(xi).numpy()

    infer = rate(2, seconds, infer_step)
    return {
        "params": params,
        "train_images_per_s": train * 64,
        "infer_images_per_s": infer * 256,
        "torch": torch.__version__,
        "threads": threads,
    }


def tabular(csv, repeats):
    import csv as csvlib

    import numpy as np
    import sklearn
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.naive_bayes import GaussianNB
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with open(csv, newline="") as f:
        rows = list(csvlib.reader(f))
    target = rows[0].index("diagnosis")
    y = np.array([r[target] == "malignant" for r in rows[1:]])
    x = np.array([[float(v) for i, v in enumerate(r) if i != target] for r in rows[1:]])
    families = {
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500)),
        "naive_bayes": make_pipeline(StandardScaler(), GaussianNB(var_smoothing=1e-9)),
        "forest": make_pipeline(
            StandardScaler(),
            RandomForestClassifier(n_estimators=100, max_depth=8, max_features=0.5, n_jobs=1, random_state=42),
        ),
    }
    folds = StratifiedKFold(n_splits=10, shuffle=True, random_state=42)
    out = {"sklearn": sklearn.__version__}
    for name, model in families.items():
        times, oof = [], None
        for _ in range(max(repeats, 1)):
            started = time.perf_counter()
            oof = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
            times.append(time.perf_counter() - started)
        times.sort()
        out[name] = {"cv_seconds": times[len(times) // 2], "auroc": roc_auc_score(y, oof)}
    return out


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "image":
        result = image(int(sys.argv[2]), float(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "tabular":
        result = tabular(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
