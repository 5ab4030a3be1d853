#!/usr/bin/env bash
# The paper's stage-1 corpus and its 5:1:2:2 mix (vqa : caption : grounding : point_vqa) from the
# public datasets, in their official download layouts (README "Stage-1 recipe" gives the expected
# row counts and why each dataset is here).
#
#   DATA=/data OUT=runs/recipe bash pipelines/stage1_recipe.sh          # build, mix, train
#   STEPS="build mix" DATA=/data bash pipelines/stage1_recipe.sh         # only some steps
#
# DATA holds (each folder as its dataset ships it):
#   cityscapes/    leftImg8bit/ + gtFine/                       (cityscapes-dataset.com: leftImg8bit_trainvaltest, gtFine_trainvaltest)
#   coco/          train2017/ + annotations/instances_train2017.json + annotations/captions_train2017.json
#   drivelm/       v1_1_train_nus.json + nuscenes/samples/CAM_*/  (DriveLM-nuScenes, with the nuScenes camera images)
#   vqav2/         v2_OpenEnded_mscoco_{train,val}2014_questions.json + v2_mscoco_{train,val}2014_annotations.json + train2014/ val2014/
#   gqa/           train_balanced_questions.json + images/
#   flickr30k/     Sentences/ Annotations/ flickr30k-images/ train.txt val.txt test.txt   (Flickr30k Entities)
#   refcoco/       refs(unc).p + instances.json  (lichengunc/refer) ; images: coco/train2014
# MODEL: an initial model folder (HF Qwen2-VL layout + tokenizer; owl-train init-tiny for a smoke run).
set -euo pipefail

DATA=${DATA:?set DATA to the folder holding the downloads (see the header of this file)}
OUT=${OUT:-runs/stage1-recipe}
MODEL=${MODEL:-$OUT/init-model}
WORKERS=${WORKERS:-$(nproc)}
STEPS=${STEPS:-"build mix train"}
OWL_DATA=${OWL_DATA:-owl-data}
OWL_TRAIN=${OWL_TRAIN:-owl-train}

# One source per task family; a source name can be given once, so COCO captions and COCO
# instances are two sources (coco_captions, coco) over the same images.
SOURCES=(
  --source "cityscapes=$DATA/cityscapes"                                                  # point_vqa (street, masks)
  --source "coco=$DATA/coco/train2017:$DATA/coco/annotations/instances_train2017.json"    # point_vqa + grounding
  --source "drivelm=$DATA/drivelm"                                                        # point_vqa + grounding (driving QA)
  --source "vqav2=$DATA/vqav2"                                                            # vqa
  --source "gqa=$DATA/gqa?questions=$DATA/gqa/train_balanced_questions.json"              # vqa
  --source "coco_captions=$DATA/coco?captions=$DATA/coco/annotations/captions_train2017.json&images=$DATA/coco/train2017"  # caption
  --source "flickr30k=$DATA/flickr30k"                                                    # caption + grounding
  --source "refcoco=$DATA/refcoco?images=$DATA/coco/train2014"                            # grounding
)

for step in $STEPS; do
  case $step in
    build)
      "$OWL_DATA" build --out "$OUT/corpus" --workers "$WORKERS" "${SOURCES[@]}"
      "$OWL_DATA" stats "$OUT/corpus"
      "$OWL_DATA" validate "$OUT/corpus" ;;
    mix)
      # --on-exhausted stop ends the mix at the first task to run out: VQA (about 1.39M rows at
      # 5/10 of the picks), so every VQA row is seen once and no task repeats a row. Street
      # frames get half the point picks although COCO holds most point rows.
      "$OWL_DATA" mix "$OUT/corpus" --ratio 5:1:2:2 --tasks vqa,caption,grounding,point_vqa \
        --within point_vqa=cityscapes:2,coco:1,drivelm:1 --on-exhausted stop --seed 0 --out "$OUT/mix" ;;
    train)
      [ -d "$MODEL" ] || "$OWL_TRAIN" init-tiny "$MODEL"
      "$OWL_TRAIN" stage1 --config pipelines/stage1.yaml --model "$MODEL" --corpus "$OUT/corpus" \
        --mix "$OUT/mix" --out "$OUT/stage1" ;;
    *) echo "unknown step $step (use build, mix, train)" >&2; exit 2 ;;
  esac
done
