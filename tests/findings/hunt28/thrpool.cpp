// many long-lived threads (like a server pool) each with a modest, varied working set; plus thread churn
#include <thread>
#include <vector>
#include <string>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <atomic>
#include <chrono>
#include <unistd.h>
int main(int argc,char**argv){ int T=argc>1?atoi(argv[1]):64; int R=argc>2?atoi(argv[2]):20; std::atomic<long> tot{0};
  for(int round=0;round<R;round++){ std::vector<std::thread> ts;
    for(int t=0;t<T;t++) ts.emplace_back([&,t]{ std::mt19937 r(t+round*1000); std::vector<void*> keep; long s=0;
      for(int i=0;i<20000;i++){ size_t sz = (r()%8==0) ? 1024+r()%30000 : 8+r()%500; void*p=malloc(sz); ((char*)p)[0]=1; s+=sz; if(keep.size()<300) keep.push_back(p); else { size_t j=r()%keep.size(); free(keep[j]); keep[j]=p; } }
      for(void*p:keep) free(p); tot+=s; });
    for(auto&t:ts) t.join(); }
  printf("%ld\n", tot.load()); }
