# The metainfo of the COCO pointing game's samples (GroundingDataset with expressions='captions' and
# LinkCategoryWords: the category words of each caption, their boxes and the mentions without a box),
# the one source for every pointing config: configs/tasks/grounding/*-pointing.py and
# configs/_base_/datasets/coco_mini_pointing.py (tools/run_ablation.py --dataset flickr8k-real).
pointing_meta_keys = (
    'sample_idx',
    'image_id',
    'ori_image_id',
    'img_path',
    'caption',
    'ann_index',
    'ori_shape',
    'img_shape',
    'categories',
    'gt_word_indices',
    'gt_box_groups',
    'gt_object_names',
    'num_unboxed_mentions',
)
